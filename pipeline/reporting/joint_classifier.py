"""The frame classifier alone against the joint one (docs/studies/joint-cnn.md): a table of None, Joint
LSTM and Joint DDLSTM on each dataset of each pair with each dataset's own classifier ("alone") and with
the pair's joint, dual-domain classifier ("joint"), and a figure of the joint classifier's alphas per
layer (the CNN's analogue of Fig. 7). Read from the files the workflow writes:

    results/features/<dataset>/split<k>/none.json                      alone: None
    results/recurrent/<D1>+<D2>/split<k>/joint-<model>-L<depth>[-s<seed>]/metrics.csv
    results/features_joint/<D1>+<D2>/<dataset>/split<k>/none.json      joint: None
    results/recurrent_joint/<D1>+<D2>/split<k>/joint-<model>-L<depth>[-s<seed>]/metrics.csv
    results/features_joint/<D1>+<D2>/split<k>/{finetune,linear}/alphas.csv

Each cell is the mean over the (split, seed) samples that both the alone and the joint runs have, with
the standard deviation over seeds (`uncertainty.Spread`); "joint - alone" is the mean paired difference
over those samples with its Student's t 95% interval (`uncertainty.paired_difference`: runs of one split
and seed share their test videos and seed, and differ only in the classifier under them). The None row
has no seed: its difference is over splits.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .figures import _read_alphas, _save
from .runs import FIRST_SEED, read_runs, values
from .tables import write_table
from .uncertainty import paired_difference, spread_over_seeds

# The table's methods: (label, protocol, model); "none" is the frame classifier alone.
METHODS = (("None", "none", None), ("Joint LSTM", "joint", "lstm"), ("Joint DDLSTM", "joint", "ddlstm"))
JOINT_NONE = re.compile(r"(?P<pair>[^/]+\+[^/]+)/(?P<dataset>[^/]+)/split(?P<split>\d+)/none\.json$")
ALPHAS = re.compile(r"(?P<pair>[^/+]+\+[^/+]+)/split(?P<split>\d+)/[^/]+/alphas\.csv$")
SINGLE_NONE = re.compile(r"(?P<dataset>[^/]+)/split(?P<split>\d+)/none\.json$")


def read_none_by_pair(paths, joint: bool) -> dict:
    """{(pair or None, dataset): {(split, FIRST_SEED): accuracy %}}: a joint classifier's None files are
    per pair (`<D1>+<D2>/<dataset>/split<k>/`), a dataset's own per dataset (`<dataset>/split<k>/`)."""
    found: dict = defaultdict(dict)
    for path in map(Path, paths):
        match = (JOINT_NONE if joint else SINGLE_NONE).search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a{' joint classifier' if joint else ''} none.json "
                             f"({'<D1>+<D2>/' if joint else ''}<dataset>/split<k>/none.json)")
        pair = tuple(match["pair"].split("+")) if joint else None
        found[pair, match["dataset"]][int(match["split"]), FIRST_SEED] = 100.0 * json.loads(path.read_text())[
            "frame_accuracy"]
    return found


def comparison_rows(alone_runs: dict, joint_runs: dict, alone_none: dict, joint_none: dict, pairs,
                    depth: int) -> list[dict]:
    """Per pair, dataset and method: alone, joint, and joint - alone with its interval, over the samples both have."""
    rows = []
    for pair in pairs:
        for dataset in pair:
            for label, protocol, model in METHODS:
                if protocol == "none":
                    alone, joint = alone_none.get((None, dataset), {}), joint_none.get((tuple(pair), dataset), {})
                else:
                    key = (*pair, protocol, model, depth)
                    alone, joint = values(alone_runs, key, dataset), values(joint_runs, key, dataset)
                shared = set(alone) & set(joint)
                if not shared:
                    continue
                alone = {k: v for k, v in alone.items() if k in shared}
                joint = {k: v for k, v in joint.items() if k in shared}
                difference = paired_difference(joint, alone)
                rows.append({"pair": "/".join(pair), "dataset": dataset, "method": label,
                             "classifier alone": spread_over_seeds(alone), "classifier joint": spread_over_seeds(joint),
                             "joint - alone": difference.mean, "95% CI low": difference.low,
                             "95% CI high": difference.high, "pairs (split x seed)": difference.n})
    return rows


def write_comparison(alone_metrics, joint_metrics, alone_none_paths, joint_none_paths, pairs, depth: int, output_stem,
                     feature_datasets=(), readings: str = "") -> list[Path]:
    """The table as CSV, Markdown and LaTeX (`output_stem`.csv / .md / .tex)."""
    alone_runs, joint_runs = read_runs(alone_metrics), read_runs(joint_metrics)
    rows = comparison_rows(alone_runs, joint_runs, read_none_by_pair(alone_none_paths, joint=False),
                           read_none_by_pair(joint_none_paths, joint=True), pairs, depth)
    if not rows:
        raise ValueError("no method has runs with both the classifier alone and the joint one: nothing to compare")
    seeds = len({seed for r in joint_runs.values() for d in r.values() for _, seed in d.get("accuracy", {})}) or 1
    splits = sorted({split for r in joint_runs.values() for d in r.values() for split, _ in d.get("accuracy", {})})
    used = {d for pair in pairs for d in pair}
    kinds = ("BN-Inception with dual-domain BN layers and a head per dataset, against each dataset's own fine-tuned "
             "CNN" if used - set(feature_datasets) else "")
    if used & set(feature_datasets):
        kinds += ("; " if kinds else "") + ("for datasets read from features a dual-domain BN of the features and a "
                                            "linear head per dataset, against each dataset's own linear classifier")
    caption = (f"The frame classifier alone against the pair's joint one ({kinds}): frame accuracy %, "
               f"{depth}-layer recurrent models, mean over {len(splits)} splits"
               + (f" and {seeds} seeds, ± the standard deviation over seeds of the split mean" if seeds > 1 else "")
               + "; joint - alone: mean paired difference over (split, seed) with Student's t 95% interval (None: "
               "over splits, it has no seed); None: argmax of the classifier's logits for the dataset"
               + (f"; {readings}" if readings else ""))
    return write_table(rows, Path(output_stem), caption)


def joint_alphas(paths, output) -> Path:
    """Every dual-domain BN layer's alphas, one row of panels per pair: the final alpha_1 and alpha_2 by
    layer (mean over splits, the band their range), then alpha_1 and alpha_2 over training (first split),
    a line per layer coloured by depth."""
    by_pair: dict = defaultdict(dict)
    for path in map(Path, paths):
        match = ALPHAS.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a joint classifier's alphas.csv (<D1>+<D2>/split<k>/<folder>/alphas.csv)")
        by_pair[match["pair"]][int(match["split"])] = _read_alphas(path)
    figure, axes = plt.subplots(len(by_pair), 3, figsize=(14, 3.6 * len(by_pair)), squeeze=False)
    for row, (pair, by_split) in zip(axes, sorted(by_pair.items())):
        names = pair.split("+")
        finals = np.array([[[alphas[-1] for alphas in layer[1:3]] for _, layer in sorted(read.items())]
                           for read in by_split.values()])  # (splits, layers, 2)
        layers = np.arange(1, finals.shape[1] + 1)
        for k, style in ((0, "-"), (1, "--")):
            line = row[0].plot(layers, finals[:, :, k].mean(0), style, marker="." if len(layers) < 5 else None,
                               label=f"alpha_{k + 1}: {names[k]} reaching into {names[1 - k]}")[0]
            row[0].fill_between(layers, finals[:, :, k].min(0), finals[:, :, k].max(0), color=line.get_color(),
                                alpha=0.2)
        row[0].set_title(f"{pair}: final alphas by layer ({len(by_split)} splits)", fontsize=9)
        row[0].set_xlabel("layer (input first)")
        row[0].set_ylabel("alpha")
        row[0].set_ylim(0.48, 1.02)
        row[0].legend(fontsize=7)
        first = by_split[min(by_split)]
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(2, len(first))))
        for k in (0, 1):
            ax = row[k + 1]
            for colour, (_, (iterations, *alphas)) in zip(colours, sorted(first.items())):
                ax.plot(iterations, alphas[k], color=colour, linewidth=0.8)
            ax.set_title(f"alpha_{k + 1} over training, split {min(by_split)} (dark: first layers, light: last)",
                         fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylim(0.48, 1.02)
    figure.suptitle("The joint frame classifier's alphas (dual-domain BN layers; 0.5: per-dataset statistics, "
                    "1: the whole batch's)", fontsize=10)
    return _save(figure, output)
