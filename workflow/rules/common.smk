# Config validation, the experiment's lists, wildcard constraints and the input functions of the
# rules. Everything else (the work itself) is the package's command line: `python -m pipeline`.
import json
import shlex

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
PAIRS = [tuple(pair) for pair in config["pairs"]]
SPLITS = config["splits"]
REC = config["recurrent"]
DEPTHS = REC["depths"]
TABLE1_DEPTH = REC["table1_depth"]
SYNTHETIC = config["synthetic"]
SYNTHETIC_NAMES = ("synbreakfast", "synsalads", "syncooking")


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
            if name not in SYNTHETIC_NAMES:
                raise ValueError(f"config: datasets: {name!r} is not a synthetic dataset {SYNTHETIC_NAMES}; "
                                 "set synthetic: generate: false for real data")


_check_config()

PAIR_NAMES = [f"{d1}+{d2}" for d1, d2 in PAIRS]


wildcard_constraints:
    dataset="|".join(DATASETS),
    d1="|".join(DATASETS),
    d2="|".join(DATASETS),
    split=r"\d+",
    depth=r"\d+",
    protocol="joint|d1d2|d2d1",
    model="lstm|bnlstm|ddlstm",
    alpha=r"[0-9.]+",


def options(section, skip=()):
    """A config section as command-line options: --key value, --flag / --no-flag, JSON for dicts."""
    parts = []
    for key, value in section.items():
        if key in skip or value is None:
            continue
        name = key.replace("_", "-")
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


def synthetic_manifest(wildcards):
    return [f"{SYNTHETIC['output']}/manifest.json"] if SYNTHETIC["generate"] else []


def frames_options():
    frames = dict(config["frames"])
    size = frames.pop("size", None)
    if isinstance(size, list):
        size = f"{size[0]}x{size[1]}"
    return options({**frames, "size": size})


def history_of(depth):
    return REC.get("history_by_depth", {}).get(str(depth), REC["history"])


def run_inputs(wildcards):
    """The two datasets' input files in the order the protocol uses them."""
    first, second = wildcards.d1, wildcards.d2
    if wildcards.protocol == "d2d1":
        first, second = second, first
    return [f"results/boundary/{name}/split{wildcards.split}/inputs.h5" for name in (first, second)]


def run_options(wildcards):
    protocol = "joint" if wildcards.protocol == "joint" else "pretrain_finetune"
    return options({**REC, "protocol": protocol, "history": history_of(wildcards.depth)},
                   skip=("depths", "table1_depth", "history_by_depth"))


def alpha_init_options(wildcards):
    return options({**REC, "protocol": "joint", "history": history_of(wildcards.depth),
                    "alpha_init": float(wildcards.alpha)}, skip=("depths", "table1_depth", "history_by_depth"))


def output_folder(wildcards, output):
    """The run directory: the folder of the rule's first output."""
    return str(output[0]).rsplit("/", 1)[0]


def table_runs():
    """Every run of Tables 1 and 2."""
    runs = set()
    for pair in PAIR_NAMES:
        for split in SPLITS:
            for protocol, model in (("joint", "lstm"), ("joint", "bnlstm"), ("d1d2", "lstm"), ("d2d1", "lstm"),
                                    ("joint", "ddlstm")):
                runs.add(f"results/recurrent/{pair}/split{split}/{protocol}-{model}-L{TABLE1_DEPTH}/metrics.csv")
            for depth in DEPTHS:
                runs.add(f"results/recurrent/{pair}/split{split}/joint-ddlstm-L{depth}/metrics.csv")
    return sorted(runs)


def none_rows():
    return [f"results/features/{dataset}/split{split}/none.json"
            for dataset in sorted({d for pair in PAIRS for d in pair}) for split in SPLITS]


def figure7_runs():
    pair, split = PAIR_NAMES[config["figure7"]["pair"]], config["figure7"]["split"]
    return [f"results/alpha_init/{pair}/split{split}/ddlstm-L{TABLE1_DEPTH}-a{alpha}/alphas.csv"
            for alpha in config["figure7"]["alpha_inits"]]


def figure_inputs():
    split = SPLITS[0]
    d1, d2 = PAIRS[0]
    return {
        "metrics": table_runs(),
        "none": none_rows(),
        "ddlstm_runs": [f"results/recurrent/{pair}/split{split}/joint-ddlstm-L{TABLE1_DEPTH}/predictions.npz"
                        for pair in PAIR_NAMES],
        "inits": figure7_runs(),
        "strip_inputs": f"results/boundary/{d2}/split{split}/inputs.h5",
        "strip_finetuned": f"results/recurrent/{d1}+{d2}/split{split}/d1d2-lstm-L{TABLE1_DEPTH}/predictions.npz",
        "strip_ddlstm": f"results/recurrent/{d1}+{d2}/split{split}/joint-ddlstm-L{TABLE1_DEPTH}/predictions.npz",
    }


def alphas_of(wildcards, input):
    """alphas.csv beside each Table-1 DDLSTM run's predictions."""
    return " ".join(path.replace("predictions.npz", "alphas.csv") for path in input.ddlstm_runs)


def get_final_output():
    """The tables and figures, and every HDF5 file of features on the way: asking for those too
    means a deleted one is made again, and then everything that depends on it."""
    used = sorted({d for pair in PAIRS for d in pair})
    return [
        *[f"results/features/{d}/split{s}/logits.h5" for d in used for s in SPLITS],
        *[f"results/boundary/{d}/split{s}/inputs.h5" for d in used for s in SPLITS],
        *[f"results/tables/{name}.{ext}" for name in ("table1", "table2", "segmentation")
          for ext in ("csv", "md", "tex")],
        *[f"results/figures/fig{number}.png" for number in (5, 6, 7)],
    ]
