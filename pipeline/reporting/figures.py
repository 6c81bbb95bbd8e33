"""The paper's figures from the runs' outputs (matplotlib, written as PNG).

- Fig. 5: Table 1 as bars, one panel per dataset, bars coloured by the dataset it was paired with.
- Fig. 6: one test video as strips: ground truth, the fine-tuned LSTM (pre-trained on the other
  dataset) and the joint DDLSTM, first 1000 frames, one colour per class, a legend naming the classes.
- Fig. 7: the DDLSTM's alphas over training, every layer (left), and alpha_1 of the first layer
  from several initial values (right); `groups_alphas` the same for groups of three or more
  datasets, every layer's d (d - 1) alphas.
- Fig. 5's bars carry the standard deviation over seeds where there are two or more.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.colors
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np

from .runs import cell, none_cell, read_none, read_runs
from .tables import TABLE1_ROWS


def _save(figure, output) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.stem}.part{output.suffix}")
    figure.savefig(temporary, dpi=120, bbox_inches="tight")
    plt.close(figure)
    temporary.replace(output)
    return output


def figure5(metrics_paths, none_paths, pairs, depth: int, output) -> Path:
    runs, none = read_runs(metrics_paths), read_none(none_paths)
    datasets = sorted({d for pair in pairs for d in pair})
    partners = {d: [(p, pair) for pair in pairs for p in pair if d in pair and p != d] for d in datasets}
    colours = dict(zip(datasets, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.8), squeeze=False)
    labels = [label for label, _, _ in TABLE1_ROWS]
    for ax, dataset in zip(axes[0], datasets):
        width = 0.8 / max(1, len(partners[dataset]))
        for k, (partner, pair) in enumerate(partners[dataset]):
            position = pair.index(dataset)
            found = [none_cell(none, dataset) if protocol == "none" else cell(runs, (*pair, protocol, model, depth),
                                                                              dataset)
                     for _label, protocol, model in TABLE1_ROWS]
            means = [np.nan if f is None else f.mean for f in found]
            errors = [0.0 if f is None or f.sd is None else f.sd for f in found]  # over seeds, where there are several
            ax.bar(np.arange(len(labels)) + k * width, means, width, color=colours[partner],
                   yerr=errors if any(errors) else None, capsize=2,
                   label=f"with {partner}" + (" (D1)" if position == 1 else " (D2)"))
        ax.set_title(dataset)
        ax.set_xticks(np.arange(len(labels)) + width * (len(partners[dataset]) - 1) / 2)
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("frame accuracy (%)")
        ax.legend(fontsize=7)
    seeds = len({seed for r in runs.values() for d in r.values() for _, seed in d.get("accuracy", {})})
    figure.suptitle("Fig. 5: Table 1 per dataset, coloured by the paired dataset"
                    + (f"; error bars: standard deviation over {seeds} seeds" if seeds > 1 else ""))
    return _save(figure, output)


def _read_alphas(path) -> dict:
    """{layer: (iterations, alpha_1, alpha_2, ...)} from an alphas.csv: every alpha column of the layer."""
    by_layer = defaultdict(list)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        names = [name for name in reader.fieldnames or [] if name.startswith("alpha_")]
        for row in reader:
            by_layer[int(row["layer"])].append((int(row["iteration"]), *(float(row[n]) for n in names)))
    return {layer: tuple(np.array(v).T) for layer, v in sorted(by_layer.items())}


def alpha_label(k: int, domains: int, names=None) -> str:
    """What alpha k (flat, `pipeline.models.contribution` order) of a d-domain layer means: how far
    domain i's statistics reach into domain j."""
    i, rest = divmod(k, domains - 1)
    j = rest if rest < i else rest + 1
    name = (lambda d: names[d]) if names else (lambda d: f"D{d + 1}")
    return f"{name(i)} into {name(j)}"


def groups_alphas(alphas_by_group: dict[str, Path], output) -> Path:
    """Every layer's d (d - 1) alphas over training, one panel per group (the groups' analogue of Fig. 7)."""
    figure, axes = plt.subplots(1, len(alphas_by_group), figsize=(5.5 * len(alphas_by_group), 3.8), squeeze=False)
    for ax, (group, path) in zip(axes[0], alphas_by_group.items()):
        names = group.split("+")
        styles = ("-", "--", ":", "-.")
        for layer, (iterations, *alphas) in _read_alphas(path).items():
            colour = None
            for k, alpha in enumerate(alphas):
                line = ax.plot(iterations, alpha, styles[k % len(styles)], color=colour, linewidth=1,
                               label=f"layer {layer}: {alpha_label(k, len(names), names)}")[0]
                colour = line.get_color()
        ax.set_title(f"{group} ({len(names)} domains)", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("alpha")
        ax.legend(fontsize=5, ncol=2)
    figure.suptitle("DDLSTM alphas of the groups during training (alpha_ij: how far domain i's statistics reach "
                    "into domain j)", fontsize=9)
    return _save(figure, output)


def figure7(alphas_by_pair: dict[str, Path], alphas_by_init: dict[float, Path], output) -> Path:
    panels = len(alphas_by_pair) + (1 if alphas_by_init else 0)
    figure, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    for ax, (pair, path) in zip(axes[0], alphas_by_pair.items()):
        for layer, (iterations, alpha_1, alpha_2, *_) in _read_alphas(path).items():
            line = ax.plot(iterations, alpha_1, label=f"layer {layer} alpha_1")[0]
            ax.plot(iterations, alpha_2, "--", color=line.get_color(), label=f"layer {layer} alpha_2")
        ax.set_title(pair)
        ax.set_xlabel("iteration")
        ax.set_ylabel("alpha")
        ax.legend(fontsize=6)
    if alphas_by_init:
        ax = axes[0][-1]
        for init, path in sorted(alphas_by_init.items()):
            iterations, alpha_1, alpha_2 = _read_alphas(path)[1][:3]
            line = ax.plot(iterations, alpha_1, label=f"init {init:g}: alpha_1")[0]
            ax.plot(iterations, alpha_2, "--", color=line.get_color(), label=f"init {init:g}: alpha_2")
        ax.set_title("layer 1 from several initial values")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=6)
    figure.suptitle("Fig. 7: DDLSTM alphas during training")
    return _save(figure, output)


def figure6(labels: np.ndarray, finetuned: np.ndarray, ddlstm: np.ndarray, class_names: list[str], title: str,
            output, frames: int = 1000) -> Path:
    """Strips of one video's first `frames` frames, one colour per class of its dataset, with a legend
    naming the classes shown; a frame predicted as another dataset's label (stored as -1) is grey."""
    strips = [("ground truth", labels), ("fine-tuned LSTM", finetuned), ("joint DDLSTM", ddlstm)]
    strips = [(name, np.asarray(values[:frames])) for name, values in strips]
    palette = plt.get_cmap("tab20" if len(class_names) <= 20 else "gist_ncar", max(2, len(class_names)))
    foreign = (0.6, 0.6, 0.6, 1.0)
    # colour k + 1 is class k; colour 0 the other dataset's labels
    colours = matplotlib.colors.ListedColormap([foreign, *[palette(k) for k in range(len(class_names))]])
    shown = sorted({int(v) for _, values in strips for v in np.unique(values)})
    legend_rows = max(1, -(-len(shown) // 4))
    figure, axes = plt.subplots(len(strips), 1, figsize=(10, 2.4 + 0.22 * legend_rows), sharex=True)
    for ax, (name, values) in zip(axes, strips):
        ax.imshow(np.clip(values, -1, None)[None, :] + 1, aspect="auto", cmap=colours, vmin=0,
                  vmax=len(class_names), interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("frame")
    handles = [matplotlib.patches.Patch(color=colours(k + 1), label=class_names[k] if k >= 0 else
                                        "another dataset's label") for k in shown]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False,
                  bbox_to_anchor=(0.5, -0.1 - 0.07 * legend_rows))
    figure.suptitle(f"Fig. 6: {title}", fontsize=9)
    return _save(figure, output)
