# The joint frame classifier's configuration and input functions (features.joint: true; the paper's
# future work D, after AutoDIAL; docs/studies/joint-cnn.md): per pair and split one frame classifier trained on both datasets, its
# batch normalisation dual-domain, a head per dataset. Its logits of each dataset, their None row, boundary
# inputs and the joint LSTM / DDLSTM runs land beside the per-dataset ones (results/features_joint/,
# results/boundary_joint/, results/recurrent_joint/), so one run holds both and the joint_classifier table
# compares them. A pair of one dataset from videos and one from features has no joint classifier.
JOINT = config["features"].get("joint", False)
JOINT_PAIRS = [pair for pair in PAIRS if ROUTES[pair[0]] == ROUTES[pair[1]]] if JOINT else []
JOINT_METHODS = (("joint", "lstm"), ("joint", "ddlstm"))
if JOINT and not JOINT_PAIRS:
    raise ValueError(
        "config: features: joint: true, but no pair has both datasets from videos or both from features"
    )
CLASSIFIER = config["classifier"]
JOINT_FEATURE_OPTIONS = options(config["features"], skip=("extract_batch_size", "joint"))
# The joint linear classifier's options: the classifier section's sample, penalty and seed, its own schedule.
JOINT_LINEAR_OPTIONS = options(
    {
        **{key: CLASSIFIER[key] for key in ("max_frames", "weight_decay", "seed")},
        "steps": CLASSIFIER["joint_steps"],
        "batch_size": CLASSIFIER["joint_batch_size"],
        "lr": CLASSIFIER["joint_lr"],
    }
)


def pair_specs(wildcards):
    """The two datasets' specs, quoted for the shell, in the pair's order."""
    return " ".join(
        shlex.quote(json.dumps({"name": name, **config["datasets"][name]}))
        for name in (wildcards.d1, wildcards.d2)
    )


def joint_run_inputs(wildcards):
    """A joint-classifier run's input files: each dataset's logits from the pair's joint classifier."""
    pair = f"{wildcards.d1}+{wildcards.d2}"
    return [
        f"results/boundary_joint/{pair}/{name}/split{wildcards.split}/inputs.h5"
        for name in (wildcards.d1, wildcards.d2)
    ]


def joint_run_path(pair, split, model, seed, name="metrics.csv"):
    return f"results/recurrent_joint/{'+'.join(pair)}/split{split}/joint-{model}-L{TABLE1_DEPTH}{seed_tag(seed)}/{name}"


def joint_table_inputs():
    """The runs and None rows the joint_classifier table compares: each pair's, alone and joint."""
    samples = [
        (pair, split, model, seed)
        for pair in JOINT_PAIRS
        for split in SPLITS
        for _, model in JOINT_METHODS
        for seed in SEEDS
    ]
    return {
        "alone": [
            run_path(pair, split, "joint", model, TABLE1_DEPTH, seed=seed)
            for pair, split, model, seed in samples
        ],
        "joint": [joint_run_path(pair, split, model, seed) for pair, split, model, seed in samples],
        "alone_none": sorted(
            {f"results/features/{d}/split{s}/none.json" for pair in JOINT_PAIRS for d in pair for s in SPLITS}
        ),
        "joint_none": [
            f"results/features_joint/{'+'.join(pair)}/{d}/split{s}/none.json"
            for pair in JOINT_PAIRS
            for d in pair
            for s in SPLITS
        ],
    }


def joint_alphas():
    """alphas.csv of every pair's joint classifier, every split."""
    return [
        f"results/features_joint/{'+'.join(pair)}/split{s}/{CLASSIFIER_FOLDER[ROUTES[pair[0]]]}/alphas.csv"
        for pair in JOINT_PAIRS
        for s in SPLITS
    ]


def joint_outputs():
    """What features.joint adds to the workflow's targets: its table, its figure and its HDF5 files."""
    if not JOINT:
        return []
    files = [
        f"results/{stage}/{'+'.join(pair)}/{d}/split{s}/{name}"
        for pair in JOINT_PAIRS
        for d in pair
        for s in SPLITS
        for stage, name in (("features_joint", "logits.h5"), ("boundary_joint", "inputs.h5"))
    ]
    return [
        *files,
        *[f"results/tables/joint_classifier.{ext}" for ext in ("csv", "md", "tex")],
        "results/figures/joint_classifier_alphas.png",
    ]
