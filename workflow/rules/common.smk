# Config validation, the experiment's lists, wildcard constraints and the input functions of the
# rules. Everything else (the work itself) is the package's command line: `python -m pipeline`.
import copy
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The package is the environment's (installed with the workflow, or an editable checkout): the planning
# below uses it, and every job runs it (`python -m pipeline`).
try:
    from pipeline import deploy
    from pipeline.dataset_spec import input_route, required_paths
except ImportError as error:
    raise WorkflowError(
        f"the ddlstm workflow needs its Python package in the environment that runs snakemake ({sys.executable}): "
        "pip install ddlstm (a wheel, a checkout, or git+<the workflow's repository>@<its tag>), then run "
        f"snakemake again ({error})"
    ) from None


def experiment_from_command_line():
    """A config given on the command line (--configfile, --config) that names `datasets` is a whole
    experiment: it replaces config/config.yaml instead of being merged into it key by key (Snakemake's rule,
    which stands for every other command-line config), so that no dataset, group, export or setting of the
    working directory's experiment leaks into it."""
    command_line = workflow.config_settings.overwrite_config or {}
    if "datasets" in command_line:
        config.clear()
        config.update(copy.deepcopy(command_line))


experiment_from_command_line()
validate(config, schema="../schemas/config.schema.yaml")
config["figure7"].setdefault("split", config["splits"][0])

# Jobs run the python that runs snakemake (the package above), unless a conda environment is theirs
# (--sdm conda: CONDA_ENV, which installs the package from where this workflow came from).
USES_CONDA = any(method.name == "CONDA" for method in workflow.deployment_settings.deployment_method)
PREFIX = "set -euo pipefail; "
if not USES_CONDA:
    PREFIX += f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; "
# Jobs on this machine start warm: forked from a process that has imported torch (pipeline/warmstart.py),
# which saves each of them 1.5-3 s of CPU. DDLSTM_WARM_START=0 in the environment turns it off.
if workflow.local_exec and not workflow.remote_exec:
    PREFIX += "export DDLSTM_WARM_START=${{DDLSTM_WARM_START:-1}}; "
shell.prefix(PREFIX)
CONDA_ENV = (
    str(
        deploy.conda_environment(
            workflow.source_path("../envs/ddlstm.yaml"),
            deploy.package_requirement(workflow.current_basedir),
            ".snakemake/ddlstm-envs",
        )
    )
    if USES_CONDA
    else "../envs/ddlstm.yaml"
)

DATASETS = list(config["datasets"])
PAIRS = [tuple(pair) for pair in config["pairs"]]
SPLITS = config["splits"]
REC = config["recurrent"]
DEPTHS = REC["depths"]
TABLE1_DEPTH = REC["table1_depth"]
SYNTHETIC = config["synthetic"]
SYNTHETIC_NAMES = ("synbreakfast", "synsalads", "syncooking")
TABLES = config["tables"]
# Every recurrent run once per seed; the first seed's runs keep the plain run directories (a config without
# `seeds` has exactly the runs it always had), the others' end in -s<seed>.
SEEDS = config.get("seeds") or [REC.get("seed", 0)]
GROUPS = [tuple(group) for group in config.get("groups", [])]
GROUP_SPLITS = config.get("group_splits") or SPLITS
GROUP_NAMES = ["+".join(group) for group in GROUPS]
GROUP_METHODS = (("joint", "lstm"), ("joint", "bnlstm"), ("joint", "ddlstm"))
# Runs exported as bundles for `ddlstm predict` / `stream`: "<D1>+<D2>[+...]/split<k>/<run folder>".
EXPORTS = config.get("exports", [])
# Options of the train command whose flag is not --<key> (pipeline.training.config.RecurrentConfig, `flag`).
RENAMED_FLAGS = {"inputs": "inputs-from"}
# Table 1's methods: (protocol, model) of every run directory <protocol>-<model>-L<depth>.
TABLE1_METHODS = (
    ("joint", "lstm"),
    ("joint", "bnlstm"),
    ("d1d2", "lstm"),
    ("d2d1", "lstm"),
    ("joint", "ddlstm"),
)
# Tables 3 and 4 (comparison with published results): joint LSTM and DDLSTM online, DDLSTM with look-ahead.
COMPARISON_METHODS = (("joint", "lstm"), ("joint", "ddlstm"), ("lookahead", "ddlstm"))
# Table 5 (a small dataset learnt from a larger one): pre-train/fine-tune LSTM both ways, joint DDLSTM.
TABLE5_METHODS = (("d1d2", "lstm"), ("d2d1", "lstm"), ("joint", "ddlstm"))


def _check_config():
    """What the schema cannot say, said as clearly: names that must refer to each other."""
    for pair in PAIRS:
        for name in pair:
            if name not in DATASETS:
                raise ValueError(f"config: pairs: {name!r} is not a key of config 'datasets' ({DATASETS})")
        if pair[0] == pair[1]:
            raise ValueError(f"config: pairs: {list(pair)} pairs a dataset with itself")
    if config["figure7"]["pair"] >= len(PAIRS):
        raise ValueError(f"config: figure7: pair {config['figure7']['pair']} is not an index of 'pairs'")
    if config["figure7"]["split"] not in SPLITS:
        raise ValueError(f"config: figure7: split {config['figure7']['split']} is not in 'splits' {SPLITS}")
    if SYNTHETIC["generate"]:
        for name in DATASETS:
            if name not in SYNTHETIC_NAMES and ROUTES[name] == "videos":
                raise ValueError(
                    f"config: datasets: {name!r} is not a synthetic dataset {SYNTHETIC_NAMES}; "
                    "set synthetic: generate: false for real data"
                )
    named = [
        (f"tables: {table}", (entry["dataset"], entry["partner"]))
        for table in ("table3", "table4")
        for entry in TABLES.get(table, [])
    ]
    named += [("tables: table5: pairs", tuple(pair)) for pair in TABLES.get("table5", {}).get("pairs", [])]
    for group in GROUPS:
        for name in group:
            if name not in DATASETS:
                raise ValueError(f"config: groups: {name!r} is not a key of config 'datasets' ({DATASETS})")
    for export in EXPORTS:
        names, split, _ = export.split("/")
        if names not in ["+".join(pair) for pair in PAIRS] + ["+".join(group) for group in GROUPS]:
            raise ValueError(
                f"config: exports: {export!r}: {names!r} is not one of 'pairs' (as D1+D2) or 'groups' "
                "(remove the export, or name a run of this experiment)"
            )
        splits = SPLITS if names.count("+") == 1 else GROUP_SPLITS
        if int(split.removeprefix("split")) not in splits:
            raise ValueError(f"config: exports: {export!r}: {split} is not one of the splits run {splits}")
    if REC.get("inputs") == "features" and not FEATURE_DATASETS:
        raise ValueError(
            "config: recurrent: inputs: features, but no dataset is read from precomputed features "
            "(a 'features' key, or an MS-TCN folder with features/)"
        )
    for where, (first, second) in named:
        for name in (first, second):
            if name not in DATASETS:
                raise ValueError(f"config: {where}: {name!r} is not a key of config 'datasets' ({DATASETS})")
        if first == second:
            raise ValueError(f"config: {where}: {first!r} is paired with itself")


def _routes():
    """Dataset -> "videos" or "features": what its frame classifier starts from."""
    routes = {}
    for name, spec in config["datasets"].items():
        try:
            routes[name] = input_route({"name": name, **spec})
        except ValueError as error:
            raise ValueError(f"config: datasets: {error}") from None
    return routes


ROUTES = _routes()
VIDEO_DATASETS = [name for name in DATASETS if ROUTES[name] == "videos"]
FEATURE_DATASETS = [name for name in DATASETS if ROUTES[name] == "features"]
_check_config()
PAIR_NAMES = [f"{d1}+{d2}" for d1, d2 in PAIRS]


def one_of(names):
    """A wildcard constraint matching exactly these names (and nothing when there are none)."""
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    dataset="|".join(DATASETS),
    group=one_of([re.escape(name) for name in GROUP_NAMES]),
    seed=r"\d+",
    names=one_of([re.escape(name) for name in PAIR_NAMES + GROUP_NAMES]),
    run=r"[a-z0-9]+-(lstm|bnlstm|ddlstm)-L\d+(-s\d+)?",
    d1="|".join(DATASETS),
    d2="|".join(DATASETS),
    split=r"\d+",
    depth=r"\d+",
    protocol="joint|d1d2|d2d1|lookahead",
    model="lstm|bnlstm|ddlstm",
    alpha=r"[0-9.]+",


def options(section, skip=()):
    """A config section as command-line options: --key value, --flag / --no-flag, JSON for dicts."""
    parts = []
    for key, value in section.items():
        if key in skip or value is None:
            continue
        name = RENAMED_FLAGS.get(key, key.replace("_", "-"))
        flag = f"--{name}"
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{name}")
        elif isinstance(value, dict):
            parts += [flag, shlex.quote(json.dumps(value))]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def dataset_spec(wildcards):
    return json.dumps({"name": wildcards.dataset, **config["datasets"][wildcards.dataset]})


def _files_under(path):
    """Every file under a folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [str(path)]


def dataset_files(wildcards):
    """What a dataset is read from: every file of its annotations, mapping, videos or features (a
    synthetic dataset: the generator's manifest). A changed file reruns that dataset's jobs and what
    follows them; a path the dataset needs that does not exist stops the run before any job, naming it."""
    name = wildcards.dataset
    if SYNTHETIC["generate"] and name in SYNTHETIC_NAMES:
        return [f"{SYNTHETIC['output']}/manifest.json"]
    needed = required_paths(config["datasets"][name])
    missing = [path for path in needed if not Path(path).exists()]
    return missing or sorted({file for path in needed for file in _files_under(path)})


def initial_weights(wildcards):
    """The frame classifier's initial weights file, when the config names one."""
    return [config["features"]["weights"]] if config["features"].get("weights") else []


def frames_options():
    frames = dict(config["frames"])
    size = frames.pop("size", None)
    if isinstance(size, list):
        size = f"{size[0]}x{size[1]}"
    return options({**frames, "size": size})


def tolerance_options():
    frames = config["frames"]
    return options({key: frames[key] for key in ("tolerance_frames", "tolerance_fraction") if key in frames})


def history_of(depth):
    return REC.get("history_by_depth", {}).get(str(depth), REC["history"])


def run_datasets(wildcards):
    """A run's datasets in the order the protocol uses them: a pair's (reversed for D2,D1), or a group's."""
    if hasattr(wildcards, "group"):
        return list(wildcards.group.split("+"))
    first, second = wildcards.d1, wildcards.d2
    return [second, first] if wildcards.protocol == "d2d1" else [first, second]


def run_inputs(wildcards):
    """The run's datasets' input files (logits with the boundary features), in the protocol's order."""
    return [f"results/boundary/{name}/split{wildcards.split}/inputs.h5" for name in run_datasets(wildcards)]


def run_seed(wildcards):
    return int(wildcards.seed) if hasattr(wildcards, "seed") else SEEDS[0]


def feature_options(wildcards):
    """With recurrent inputs 'features': where each of the run's datasets' features are (- for logits)."""
    if REC.get("inputs") != "features":
        return ""
    specs = [
        (
            shlex.quote(json.dumps({"name": name, **config["datasets"][name]}))
            if ROUTES[name] == "features"
            else "-"
        )
        for name in run_datasets(wildcards)
    ]
    return f"--feature-sources {' '.join(specs)} --fps {config['frames']['fps']} {tolerance_options()}"


def run_options(wildcards, domain_share=None):
    """The train command's options of a run; `domain_share` replaces the config's (the adaptive runs')."""
    protocol = "pretrain_finetune" if wildcards.protocol in ("d1d2", "d2d1") else "joint"
    lookahead = wildcards.protocol == "lookahead" or REC.get("lookahead", False)
    return " ".join(
        (
            options(
                {
                    **REC,
                    "protocol": protocol,
                    "lookahead": lookahead,
                    "history": history_of(wildcards.depth),
                    "seed": run_seed(wildcards),
                    **({"domain_share": domain_share} if domain_share is not None else {}),
                },
                skip=("depths", "table1_depth", "history_by_depth"),
            ),
            feature_options(wildcards),
        )
    ).strip()


def alpha_init_options(wildcards):
    return " ".join(
        (
            options(
                {
                    **REC,
                    "protocol": "joint",
                    "history": history_of(wildcards.depth),
                    "alpha_init": float(wildcards.alpha),
                    "seed": SEEDS[0],
                },
                skip=("depths", "table1_depth", "history_by_depth"),
            ),
            feature_options(wildcards),
        )
    ).strip()


# The comparison of the fixed and the adaptive batch makeup (workflow/rules/makeup.smk), beyond the paper:
# its future work B. Only with adaptive_share_comparison: true.
ADAPTIVE_COMPARISON = config.get("adaptive_share_comparison", False)
ADAPTIVE_MODELS = ("lstm", "bnlstm", "ddlstm")  # Table 1's joint models
if ADAPTIVE_COMPARISON and not isinstance(REC.get("domain_share", 0.5), (int, float)):
    raise ValueError(
        "config: adaptive_share_comparison compares the adaptive makeup with a fixed one: set "
        f"recurrent: domain_share to a number (got {REC['domain_share']!r})"
    )


def adaptive_run_options(wildcards):
    return run_options(wildcards, domain_share="adaptive")


def adaptive_runs(name):
    """`name` (metrics.csv, shares.csv) of every adaptive run: the joint models of Table 1, every pair, split, seed."""
    return [
        f"results/recurrent/{d1}+{d2}/split{split}/joint-{model}-L{TABLE1_DEPTH}-adaptive{seed_tag(seed)}/{name}"
        for d1, d2 in PAIRS
        for split in SPLITS
        for seed in SEEDS
        for model in ADAPTIVE_MODELS
    ]


def fixed_runs():
    """metrics.csv of the same joint runs with the fixed share (Table 1's)."""
    return [
        run_path(pair, split, "joint", model, TABLE1_DEPTH, seed=seed)
        for pair in PAIRS
        for split in SPLITS
        for seed in SEEDS
        for model in ADAPTIVE_MODELS
    ]


def adaptive_share_outputs():
    """The comparison's table (CSV, Markdown, LaTeX) and figure, when the config asks for it."""
    if not ADAPTIVE_COMPARISON:
        return []
    return [
        *[f"results/tables/adaptive_share.{ext}" for ext in ("csv", "md", "tex")],
        "results/figures/adaptive_share.png",
    ]


def output_folder(wildcards, output):
    """The run directory: the folder of the rule's first output."""
    return str(output[0]).rsplit("/", 1)[0]


def seed_tag(seed):
    """The end of a run directory's name: nothing for the first seed, -s<seed> for the others."""
    return "" if seed == SEEDS[0] else f"-s{seed}"


def run_path(pair, split, protocol, model, depth, name="metrics.csv", seed=None):
    """A pair's run (seed: the first by default), or with three or more datasets a group's."""
    seed = SEEDS[0] if seed is None else seed
    folder = "recurrent" if len(pair) == 2 else "groups"
    return (
        f"results/{folder}/{'+'.join(pair)}/split{split}/{protocol}-{model}-L{depth}{seed_tag(seed)}/{name}"
    )


def comparison_pair(entry):
    """The pair of a Table 3/4 entry: Table 1's order when Table 1 has the pair (its runs serve both)."""
    dataset, partner = entry["dataset"], entry["partner"]
    return (partner, dataset) if (partner, dataset) in PAIRS else (dataset, partner)


def planned_runs():
    """(pair, split, protocol, model, depth) of every recurrent run the tables need."""
    runs = set()
    for pair in PAIRS:
        for split in SPLITS:
            runs |= {(pair, split, protocol, model, TABLE1_DEPTH) for protocol, model in TABLE1_METHODS}
            runs |= {(pair, split, "joint", "ddlstm", depth) for depth in DEPTHS}
    for table in ("table3", "table4"):
        for entry in TABLES.get(table, []):
            runs |= {
                (comparison_pair(entry), split, protocol, model, TABLE1_DEPTH)
                for split in SPLITS
                for protocol, model in COMPARISON_METHODS
            }
    if "table5" in TABLES:
        split = TABLES["table5"]["split"]
        runs |= {
            (tuple(pair), split, protocol, model, TABLE1_DEPTH)
            for pair in TABLES["table5"]["pairs"]
            for protocol, model in TABLE5_METHODS
        }
    return sorted(runs)


def group_runs():
    """(group, split, protocol, model, depth) of every group run."""
    return [
        (group, split, protocol, model, TABLE1_DEPTH)
        for group in GROUPS
        for split in GROUP_SPLITS
        for protocol, model in GROUP_METHODS
    ]


def table_runs():
    """metrics.csv of every run of the tables, every seed."""
    runs = planned_runs() + group_runs()
    return [run_path(*run, seed=seed) for run in runs for seed in SEEDS]


def none_rows():
    used = {(d, split) for pair in PAIRS for d in pair for split in SPLITS}
    used |= {(d, split) for group in GROUPS for d in group for split in GROUP_SPLITS}
    return [f"results/features/{dataset}/split{split}/none.json" for dataset, split in sorted(used)]


def figure7_runs():
    pair, split = PAIR_NAMES[config["figure7"]["pair"]], config["figure7"]["split"]
    return [
        f"results/alpha_init/{pair}/split{split}/ddlstm-L{TABLE1_DEPTH}-a{alpha}/alphas.csv"
        for alpha in config["figure7"]["alpha_inits"]
    ]


def figure_inputs():
    split = SPLITS[0]
    d1, d2 = PAIRS[0]
    return {
        "metrics": table_runs(),
        "none": none_rows(),
        "alphas": [run_path(pair, split, "joint", "ddlstm", TABLE1_DEPTH, "alphas.csv") for pair in PAIRS],
        "inits": figure7_runs(),
        "strip_inputs": f"results/boundary/{d2}/split{split}/inputs.h5",
        "strip_finetuned": run_path((d1, d2), split, "d1d2", "lstm", TABLE1_DEPTH, "predictions.npz"),
        "strip_ddlstm": run_path((d1, d2), split, "joint", "ddlstm", TABLE1_DEPTH, "predictions.npz"),
        "group_alphas": group_alphas(),
    }


def group_alphas():
    """alphas.csv of each group's DDLSTM run (first group split, first seed), for the groups' alpha figure."""
    return [
        run_path(group, GROUP_SPLITS[0], "joint", "ddlstm", TABLE1_DEPTH, "alphas.csv") for group in GROUPS
    ]


def figure_names():
    """The figures the configuration asks for: Figs. 5-7, and the groups' alphas where there are groups."""
    return ["fig5", "fig6", "fig7", *(["groups_alphas"] if GROUPS else [])]


def table_names():
    """The tables the configuration asks for."""
    return [
        "table1",
        "table2",
        "segmentation",
        *[name for name in ("table3", "table4", "table5") if name in TABLES],
        *(["comparison"] if len(SEEDS) > 1 else []),
        *(["groups"] if GROUPS else []),
    ]


def table_options():
    """The tables step's description of Tables 3-5 (pairs as D1+D2, in the order their runs use)."""
    parts = []
    for table in ("table3", "table4"):
        if table in TABLES:
            entries = [f"{entry['dataset']}:{'+'.join(comparison_pair(entry))}" for entry in TABLES[table]]
            parts += [f"--{table}", *entries]
    if "table5" in TABLES:
        parts += [
            "--table5",
            *["+".join(pair) for pair in TABLES["table5"]["pairs"]],
            "--table5-split",
            str(TABLES["table5"]["split"]),
        ]
    if FEATURE_DATASETS:
        parts += ["--feature-datasets", *FEATURE_DATASETS]
    if GROUPS:
        parts += ["--groups", *GROUP_NAMES, "--group-splits", *map(str, GROUP_SPLITS)]
    if len(SEEDS) > 1:
        parts += ["--comparison"]
    if REC.get("inputs") == "features":
        parts += ["--recurrent-inputs", "features"]
    return " ".join(parts)


def readings():
    """The readings of the paper the runs used, for the tables' captions (docs/method.md)."""
    labels = {
        "all": "a frame predicted over every dataset's labels",
        "own": "a frame predicted over its own labels",
    }
    layout = {
        "blocks": "each dataset's logits in input columns of its own",
        "shared": "logits in shared input columns",
    }
    windows = {"end": "short windows after padding", "start": "short windows from timestep 0"}
    folds = config["boundary"]["folds"]
    return (
        f"readings: {labels[REC['eval_labels']]} (eval_labels: {REC['eval_labels']}), "
        f"{layout[REC['input_layout']]} (input_layout: {REC['input_layout']}), "
        f"{windows[REC['short_windows']]} (short_windows: {REC['short_windows']}), "
        + (
            f"population statistics over {REC['population_batches']} batches of the final weights"
            if REC["population_batches"]
            else "population statistics the running averages of training"
        )
        + f" (population_batches: {REC['population_batches']}), "
        + (
            f"boundary features cross-fitted over {folds} folds"
            if folds > 1
            else "boundary features in-sample"
        )
        + f" (boundary folds: {folds}), "
        + f"{schedule()}"
    )


def schedule():
    """The recurrent models' optimiser and loss, in words (for the captions)."""
    optimizer = (
        f"SGD at lr {REC['lr']}" + (f" with momentum {REC['momentum']}" if REC.get("momentum") else "")
        if REC["optimizer"] == "sgd"
        else f"Adam at lr {REC['lr']}"
    )
    reduction = {
        "frames": "the loss averaged over frames",
        "windows": "the loss summed over each window's frames",
    }[REC["loss_reduction"]]
    return (
        f"{optimizer} (optimizer: {REC['optimizer']}), {reduction} "
        f"(loss_reduction: {REC['loss_reduction']}), {REC['iterations']} iterations"
    )


def export_run(wildcards):
    """The run folder a bundle is exported from, and its datasets in the run's order."""
    names = wildcards.names.split("+")
    folder = "recurrent" if len(names) == 2 else "groups"
    protocol = wildcards.run.split("-")[0]
    datasets = [names[1], names[0]] if protocol == "d2d1" else names
    return f"results/{folder}/{wildcards.names}/split{wildcards.split}/{wildcards.run}", datasets


# The frame CNN's jobs (fine-tuning, extraction) take two threads, except at the demo's size: at 32 px and a
# quarter of BN-Inception's width its operations are too small for a second thread to pay (one thread
# fine-tuned a demo split in 4.7 s of CPU; two took about 8.8 s of wall with both cores held), so two such
# jobs run side by side instead. A profile's set-threads overrides either (the SLURM profile's: 8 and 4).
FRAME_NETWORK_THREADS = 1 if config["features"].get("input_size", 224) <= 64 else 2


# Where each route's frame classifier is saved: fine-tuning for videos, the linear classifier for features.
CLASSIFIER_FOLDER = {"videos": "finetune", "features": "linear"}


def export_inputs(wildcards):
    folder, datasets = export_run(wildcards)
    return {
        "metrics": f"{folder}/metrics.csv",
        "inputs": [f"results/boundary/{d}/split{wildcards.split}/inputs.h5" for d in datasets],
        "classifiers": [
            f"results/features/{d}/split{wildcards.split}/{CLASSIFIER_FOLDER[ROUTES[d]]}/model.pt"
            for d in datasets
        ],
    }


def export_options(wildcards):
    """The export command's options besides its input files: the boundary folders, specs, rates, sizes."""
    folder, datasets = export_run(wildcards)
    size = config["frames"].get("size")
    size = f"{size[0]}x{size[1]}" if isinstance(size, list) else size
    parts = [
        "--run",
        folder,
        "--boundary",
        *[f"results/boundary/{d}/split{wildcards.split}/work" for d in datasets],
        "--dataset-specs",
        *[shlex.quote(json.dumps({"name": d, **config["datasets"][d]})) for d in datasets],
        "--fps",
        str(config["frames"]["fps"]),
        "--extract-batch",
        str(config["features"].get("extract_batch_size", 64)),
        "--workflow-config",
        shlex.quote(json.dumps(config)),
    ]
    if size is not None:
        parts += ["--frame-size", str(size)]
    return f"{' '.join(parts)} {tolerance_options()}"


def get_final_output():
    """The tables and figures, and every HDF5 file of features on the way: asking for those too
    means a deleted one is made again, and then everything that depends on it."""
    used = sorted({(dataset, split) for pair, split, *_ in planned_runs() + group_runs() for dataset in pair})
    return [
        *[f"results/features/{d}/split{s}/logits.h5" for d, s in used],
        *[f"results/boundary/{d}/split{s}/inputs.h5" for d, s in used],
        *[f"results/tables/{name}.{ext}" for name in table_names() for ext in ("csv", "md", "tex")],
        *[f"results/figures/{name}.png" for name in figure_names()],
        *[f"results/models/{run}.ddlstm" for run in EXPORTS],
    ]
