"""Convergence study of the recurrent models on real label sequences with synthesised features.

Does DDLSTM help, and when? This script builds the data once (`prepare`: MS-TCN folders with
features synthesised from the real Breakfast and 50 Salads ground truth under a feature model
(`--preset v1 | v2`, fields changed with `--feature [DATASET.]KEY=VALUE`), the linear frame
classifier and the cross-fitted boundary LSTM of split 1), trains named variants of the Table 1
methods with an evaluation every `eval_every` steps (`run`: one process per run, one thread each,
`--jobs` at a time; a run stopped early resumes from its checkpoint), and summarises them
(`report`: Markdown tables of the accuracy at 2000 steps, at the last and best evaluation, and of
the edit score, per variant, mean over seeds, and a figure of the accuracy curves and DDLSTM's
alphas over training); `reevaluate` scores finished runs again with other evaluation options
(e.g. `eval_labels=own`, or population statistics recomputed), the weights as trained.

The second study (docs/studies/convergence.md): the paper's schedule (lr 0.01, 50,000 steps, alpha
0.75, no momentum, no clipping) under three readings of what it leaves open (`READINGS`: frame-mean
or window-sum loss, SGD or Adam), `paper-<reading>-<model>` variants on the harder v2 features,
summarised by `paper-report`; `cal-*` variants and `calibration-report` calibrate the feature
model, `demo-*` variants and `curves-report` look at the demo's short schedule.

    python studies/convergence.py prepare --real ../shared/data/real --data studies/out/data-v2
    python studies/convergence.py run --data studies/out/data-v2 --runs studies/out/runs-v2 --jobs 1 \
        --seeds 0 --variants paper-fa-lstm paper-fa-bnlstm paper-fa-ddlstm
    python studies/convergence.py paper-report --runs studies/out/runs-v2 --data studies/out/data-v2 \
        --output docs/studies/convergence --best fa
    # the first study: its data, its variants, its report
    python studies/convergence.py prepare --real ../shared/data/real --data studies/out/data --preset v1 \
        --boundary-history 100 --boundary-kinds crossfit insample
    python studies/convergence.py run --data studies/out/data --runs studies/out/runs --variants lstm ddlstm --seeds 0 1
    python studies/convergence.py report --runs studies/out/runs --output studies/out/report

Every variant is the base configuration (BASE) with a few keys changed (VARIANTS); the numbers are
those of synthesised features, not of the real datasets' features.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

BASE = {
    "protocol": "joint", "model": "ddlstm", "layers": 3, "hidden": 64, "history": 100, "batch_size": 64,
    "iterations": 4000, "lr": 0.5, "momentum": 0.9, "clip_grad_norm": 5.0, "eval_every": 400, "log_every": 50,
    "checkpoint_every": 1000, "eval_batch": 512, "population_batches": 50, "device": "cpu",
}
SHORT = {"iterations": 2000}  # the variants beside Table 1's methods: compared at 2000 steps
VARIANTS = {
    # Table 1's methods at the demo's optimiser (lr 0.5, momentum 0.9, clipping 5)
    "lstm": {"model": "lstm"},
    "bnlstm": {"model": "bnlstm"},
    "ddlstm": {"model": "ddlstm"},
    "d1d2-lstm": {"model": "lstm", "protocol": "pretrain_finetune"},
    "d2d1-lstm": {"model": "lstm", "protocol": "pretrain_finetune", "reverse": True},
    # evaluation statistics: the running averages training kept instead of recomputed ones
    "ddlstm-ema": {"model": "ddlstm", "population_batches": 0, **SHORT},
    "bnlstm-ema": {"model": "bnlstm", "population_batches": 0, **SHORT},
    # optimisation
    "ddlstm-affine": {"model": "ddlstm", "learnable_affine": True, **SHORT},
    "bnlstm-affine": {"model": "bnlstm", "learnable_affine": True, **SHORT},
    "ddlstm-lr0.1": {"model": "ddlstm", "lr": 0.1, **SHORT},
    "ddlstm-paper-sgd": {"model": "ddlstm", "lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0, **SHORT},
    "lstm-paper-sgd": {"model": "lstm", "lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0, **SHORT},
    "ddlstm-alpha-lr0.1": {"model": "ddlstm", "alpha_lr_scale": 0.1, **SHORT},
    # readings
    "ddlstm-shared": {"model": "ddlstm", "input_layout": "shared", **SHORT},
    "lstm-shared": {"model": "lstm", "input_layout": "shared", **SHORT},
    "bnlstm-shared": {"model": "bnlstm", "input_layout": "shared", **SHORT},
    "d1d2-lstm-shared": {"model": "lstm", "protocol": "pretrain_finetune", "input_layout": "shared", **SHORT},
    "d2d1-lstm-shared": {"model": "lstm", "protocol": "pretrain_finetune", "input_layout": "shared",
                         "reverse": True, **SHORT},
    "ddlstm-start": {"model": "ddlstm", "short_windows": "start", **SHORT},
    "bnlstm-start": {"model": "bnlstm", "short_windows": "start", **SHORT},
    "ddlstm-insample": {"model": "ddlstm", "boundary": "insample", **SHORT},
    "lstm-insample": {"model": "lstm", "boundary": "insample", **SHORT},
}
# The paper's schedule ("a learning rate of 0.01 is used for 50,000 iterations, and all alpha values
# are initialised to 0.75"; no momentum, no clipping) at a size whose 50,000 steps fit a session
# on one thread, under three readings of what it leaves open: fs = frame-mean loss + plain SGD,
# ws = window-sum loss + plain SGD, fa = frame-mean loss + Adam.
SMALL = {"layers": 3, "hidden": 32, "history": 50, "batch_size": 32}
PAPER = {**SMALL, "iterations": 50_000, "lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0, "alpha_init": 0.75,
         "eval_every": 5000, "log_every": 250, "checkpoint_every": 1000}
READINGS = {"fs": {"loss_reduction": "frames", "optimizer": "sgd"},
            "ws": {"loss_reduction": "windows", "optimizer": "sgd"},
            "fa": {"loss_reduction": "frames", "optimizer": "adam"}}
for _reading, _changes in READINGS.items():
    for _model in ("lstm", "bnlstm", "ddlstm"):
        VARIANTS[f"paper-{_reading}-{_model}"] = {**PAPER, **_changes, "model": _model}
    for _alpha in (0.5, 1.0):  # Fig. 7's other initial values
        VARIANTS[f"paper-{_reading}-ddlstm-a{_alpha}"] = {**PAPER, **_changes, "model": "ddlstm", "alpha_init": _alpha}
# the paper's history (200, four times the study's) under the two readings that train at 50: does each
# stay stable there (the window-sum loss's gradient grows with the history, Adam's step does not)?
for _reading in ("ws", "fa"):
    VARIANTS[f"paper-{_reading}-ddlstm-h200"] = {**PAPER, **READINGS[_reading], "model": "ddlstm", "history": 200,
                                                  "iterations": 3000, "eval_every": 1000, "checkpoint_every": 1000,
                                                  "log_every": 50}
# calibration of the feature model: the joint models at the study's size and the demo's fast optimiser
CALIBRATION = {**SMALL, "iterations": 3000, "lr": 0.5, "momentum": 0.9, "clip_grad_norm": 5.0, "eval_every": 500,
               "log_every": 100, "checkpoint_every": 1000}
for _model in ("lstm", "bnlstm", "ddlstm"):
    VARIANTS[f"cal-{_model}"] = {**CALIBRATION, "model": _model}
# ... and at the reading that trained best in the paper's schedule (Adam, lr 0.01), 5000 steps
VARIANTS["cal-adam-lstm"] = {**SMALL, "model": "lstm", "optimizer": "adam", "lr": 0.01, "momentum": 0.0,
                             "clip_grad_norm": 0.0, "iterations": 5000, "eval_every": 1000, "log_every": 100,
                             "checkpoint_every": 1000}
# the demo's short schedule (80 steps at history 24) under each optimiser: which learns fastest at the start
DEMO = {**SMALL, "history": 24, "iterations": 400, "eval_every": 40, "log_every": 20, "checkpoint_every": 400}
DEMO_OPTIMISERS = {"sgd0.5m": {"lr": 0.5, "momentum": 0.9, "clip_grad_norm": 5.0},  # the demo's own
                   "fs": {"lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0},
                   "ws": {"lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0, "loss_reduction": "windows"},
                   "fa": {"lr": 0.01, "momentum": 0.0, "clip_grad_norm": 0.0, "optimizer": "adam"},
                   "fa0.003": {"lr": 0.003, "momentum": 0.0, "clip_grad_norm": 0.0, "optimizer": "adam"}}
for _name, _changes in DEMO_OPTIMISERS.items():
    for _model in ("lstm", "bnlstm", "ddlstm"):
        VARIANTS[f"demo-{_name}-{_model}"] = {**DEMO, **_changes, "model": _model}
DATASETS = ("breakfast", "50salads")


def feature_models(preset: str, changes: list[str]) -> dict:
    """{dataset: FeatureModel} of `preset` with `changes` ("KEY=VALUE" for both datasets,
    "DATASET.KEY=VALUE" for one)."""
    from dataclasses import fields

    from pipeline.data.synthetic.features import FeatureModel, feature_model

    types = {field.name: type(getattr(FeatureModel(), field.name)) for field in fields(FeatureModel)}
    mine: dict = {name: {} for name in DATASETS}
    for item in changes:
        key, _, value = item.partition("=")
        dataset, _, key = key.rpartition(".")
        if key not in types or (dataset and dataset not in DATASETS):
            raise SystemExit(f"--feature {item!r}: [DATASET.]KEY=VALUE, KEY one of {sorted(types)}")
        parsed = value.lower() in ("1", "true", "yes") if types[key] is bool else types[key](value)
        for name in [dataset] if dataset else DATASETS:
            mine[name][key] = parsed
    return {name: feature_model(name, preset, **mine[name]) for name in DATASETS}


def prepare(real: Path, data: Path, participants: dict, split: int, models: dict | None = None,
            boundary_history: int = 50, kinds: tuple = ("crossfit",)) -> None:
    """Synthesised-feature folders, linear logits and boundary inputs (cross-fitted and / or in-sample)."""
    from dataclasses import asdict

    import torch

    from pipeline.data.precomputed import FeatureSource
    from pipeline.data.readers import load_dataset
    from pipeline.data.synthetic.features import write_folder
    from pipeline.features.linear import LinearConfig, train_and_extract
    from pipeline.training.boundary import BoundaryConfig, boundary_predictions, write_with_boundary
    from pipeline.training.sequences import load_split

    torch.set_num_threads(1)
    specs = {"breakfast": {"fps": 15, "background": "SIL"},
             "50salads": {"fps": 30, "relabel": {"action_start": "background", "action_end": "background"},
                          "background": "background"}}
    models = models or feature_models("v2", [])
    data.mkdir(parents=True, exist_ok=True)
    (data / "prepare.json").write_text(json.dumps({
        "participants": participants, "split": split, "boundary_history": boundary_history, "kinds": list(kinds),
        "models": {name: asdict(model) for name, model in models.items()}}, indent=2) + "\n")
    for name in DATASETS:
        folder = data / "synfeatures" / name
        if not (folder / "synthesis.json").is_file():
            write_folder(real / name, folder, model=models[name], participants=participants[name],
                         videos_per_participant=2)
        dataset = load_dataset({"name": name, "format": "mstcn", "annotations": str(folder), **specs[name]})
        logits = data / f"{name}_logits.h5"
        if not logits.is_file():
            train_and_extract(dataset, split, FeatureSource(dataset, fps=15), LinearConfig(max_frames=100_000),
                              logits, data / f"{name}_linear")
        for kind in kinds:
            inputs = data / f"{name}_inputs_{kind}.h5"
            if not inputs.is_file():
                config = BoundaryConfig(history=boundary_history, hidden=32, target_std=5.0, batch_size=64,
                                        iterations=1500, lr=0.05, momentum=0.9,
                                        folds={"crossfit": 4, "insample": 1}[kind], device="cpu")
                predictions = boundary_predictions(load_split(logits), config, data / f"{name}_boundary_{kind}")
                write_with_boundary(logits, predictions, inputs)


def run_command(data: Path, output: Path, variant: str, seed: int) -> list[str]:
    values = {**BASE, **VARIANTS[variant], "seed": seed}
    kind = values.pop("boundary", "crossfit")
    order = list(DATASETS)[::-1] if values.pop("reverse", False) else list(DATASETS)
    command = [sys.executable, "-m", "pipeline", "train", "--inputs",
               *[str(data / f"{name}_inputs_{kind}.h5") for name in order], "--output-dir", str(output)]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            command.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            command += [flag, str(value)]
    return command


def run(data: Path, runs: Path, variants: list[str], seeds: list[int], jobs: int) -> None:
    """Every (variant, seed) not done yet, `jobs` processes at a time, one thread each; a run
    stopped before its end resumes from its checkpoint. Each process's wall time: runs/times.csv."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    queue = [(v, s) for v in variants for s in seeds if not (runs / f"{v}-s{s}" / "predictions.npz").is_file()]
    active: list = []  # (process, name, start, log file)
    runs.mkdir(parents=True, exist_ok=True)
    while queue or active:
        while queue and len(active) < jobs:
            variant, seed = queue.pop(0)
            folder = runs / f"{variant}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            log = open(folder / "run.log", "a")  # noqa: SIM115 (the run's output; closed when it ends)
            process = subprocess.Popen(run_command(data, folder, variant, seed), stdout=log, stderr=subprocess.STDOUT,
                                       env=env)
            active.append((process, folder.name, time.monotonic(), log))
            print(f"started {folder.name}", flush=True)
        time.sleep(2)
        for item in list(active):
            process, name, started, log = item
            if process.poll() is not None:
                log.close()
                active.remove(item)
                seconds = time.monotonic() - started
                status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                with open(runs / "times.csv", "a") as handle:
                    handle.write(f"{name},{seconds:.0f},{process.returncode}\n")
                print(f"{status} {name} in {seconds:.0f} s", flush=True)


def read_curves(folder: Path, metric: str = "accuracy") -> dict:
    """{dataset: [(iteration, metric)]} of one run."""
    curves = defaultdict(list)
    with open(folder / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            curves[row["dataset"]].append((int(row["iteration"]), float(row[metric])))
    return curves


def frame_classifier_accuracy(data: Path) -> dict:
    """{dataset: pooled test frame accuracy %} of the frame classifier alone (Table 1's "None")."""
    from pipeline.features.logits import frame_accuracy

    return {dataset: 100.0 * frame_accuracy(data / f"{dataset}_logits.h5")["frame_accuracy"] for dataset in DATASETS}


def report(runs: Path, output: Path, data: Path | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by_variant = defaultdict(list)
    for folder in sorted(runs.glob("*-s*")):
        if (folder / "metrics.csv").is_file() and (folder / "predictions.npz").is_file():
            by_variant[folder.name.rsplit("-s", 1)[0]].append(folder)
    at = SHORT["iterations"]
    header = "| variant | seeds | steps | "
    lines = [header + " | ".join(f"{d} at {at} | {d} last | {d} best" for d in DATASETS) + " |",
             "|---|---|---|" + "---|---|---|" * len(DATASETS)]
    edit_lines = [header + " | ".join(f"{d} at {at} | {d} last" for d in DATASETS) + " |",
                  "|---|---|---|" + "---|---|" * len(DATASETS)]
    summary = {}
    for variant in [v for v in VARIANTS if v in by_variant]:
        # a pre-train/fine-tune run is still pre-training at `at` steps: no comparable early value
        staged = VARIANTS[variant].get("protocol") == "pretrain_finetune"
        steps = read_curves(by_variant[variant][0])[DATASETS[0]][-1][0]
        for metric, table in (("accuracy", lines), ("edit", edit_lines)):
            curves = [read_curves(folder, metric) for folder in by_variant[variant]]
            cells = []
            for dataset in DATASETS:
                early = None if staged else float(np.mean([dict(c[dataset]).get(at, np.nan) for c in curves]))
                last = [c[dataset][-1][1] for c in curves]
                spread = f" ± {np.std(last):.1f}" if len(curves) > 1 else ""
                cell = ("-" if early is None else f"{early:.1f}") + f" | {np.mean(last):.1f}{spread}"
                entry = summary.setdefault(f"{variant}/{dataset}", {})
                entry.update({f"{metric}_at_{at}": early, f"{metric}_last": float(np.mean(last))})
                if metric == "accuracy":
                    best = float(np.mean([max(a for _, a in c[dataset]) for c in curves]))
                    cell += f" | {best:.1f}"
                    entry["accuracy_best"] = best
                cells.append(cell)
            table.append(f"| {variant} | {len(curves)} | {steps} | " + " | ".join(cells) + " |")
    if data is not None:  # the frame classifier alone: no training steps, one number per dataset
        none = frame_classifier_accuracy(data)
        lines.insert(2, "| none (frame classifier) | - | - | " + " | ".join(
            f"{none[d]:.1f} | {none[d]:.1f} | {none[d]:.1f}" for d in DATASETS) + " |")
        summary.update({f"none/{d}": {"accuracy_last": none[d]} for d in DATASETS})
    lines = ["Frame accuracy % (test videos, split 1):", "", *lines, "",
             "Edit score (test videos, split 1, background excluded):", "", *edit_lines]
    output.mkdir(parents=True, exist_ok=True)
    (output / "convergence.md").write_text("\n".join(lines) + "\n")
    (output / "convergence.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))

    # Table 1's joint methods; the variants' far lower curves (e.g. the paper's SGD) would flatten them
    shown = [v for v in ("lstm", "bnlstm", "ddlstm") if v in by_variant]
    figure, axes = plt.subplots(1, len(DATASETS) + 1, figsize=(5 * (len(DATASETS) + 1), 3.8))
    colours = dict(zip(shown, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, dataset in zip(axes, DATASETS):
        for variant in shown:
            for k, folder in enumerate(by_variant[variant]):
                iterations, accuracy = zip(*read_curves(folder)[dataset])
                ax.plot(iterations, accuracy, color=colours[variant], alpha=0.9 if k == 0 else 0.5,
                        linestyle="-" if k == 0 else "--", label=variant if k == 0 else None)
        ax.set_title(f"{dataset} (test, split 1)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("frame accuracy (%)")
        ax.legend(fontsize=7)
    ax = axes[-1]
    if "ddlstm" in by_variant:
        with open(by_variant["ddlstm"][0] / "alphas.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        for layer in sorted({row["layer"] for row in rows}):
            mine = [row for row in rows if row["layer"] == layer]
            line = ax.plot([int(r["iteration"]) for r in mine], [float(r["alpha_1"]) for r in mine],
                           label=f"layer {layer} alpha_1")[0]
            ax.plot([int(r["iteration"]) for r in mine], [float(r["alpha_2"]) for r in mine], "--",
                    color=line.get_color(), label=f"layer {layer} alpha_2")
        ax.set_title("ddlstm alphas (seed 0)")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(output / "convergence.png", dpi=110)
    print(f"wrote {output / 'convergence.png'}")


def _losses(folder: Path) -> list[tuple[int, float]]:
    with open(folder / "train_log.csv", newline="") as handle:
        return [(int(row["iteration"]), float(row["loss"])) for row in csv.DictReader(handle)]


def _alphas(folder: Path) -> dict:
    """{layer: (iterations, alpha_1 values, alpha_2 values)} of a DDLSTM run, from step 0 (alpha_init)."""
    with open(folder / "alphas.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    init = json.loads((folder / "config.json").read_text())["alpha_init"]
    out = {}
    for layer in sorted({int(row["layer"]) for row in rows}):
        mine = [row for row in rows if int(row["layer"]) == layer]
        out[layer] = tuple([start] + [f(r[key]) for r in mine] for f, key, start in (
            (int, "iteration", 0), (float, "alpha_1", init), (float, "alpha_2", init)))
    return out


def paper_report(runs: Path, output: Path, data: Path, best: str, seed: int = 0) -> None:
    """The paper's schedule under each reading: paper.md (Table-1-style rows at the last evaluation,
    the curves every `eval_every` steps, the loss at the end, the alphas), paper.json,
    paper-curves.png (accuracy curves per reading) and paper-alphas.png (Fig. 7: every layer's
    alphas per reading, and from the three initial values under the reading `best`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    none = frame_classifier_accuracy(data)
    names = {"lstm": "Joint, LSTM", "bnlstm": "Joint, BNLSTM", "ddlstm": "Joint, DDLSTM"}
    described = {"fs": "frame-mean loss + plain SGD", "ws": "window-sum loss + plain SGD",
                 "fa": "frame-mean loss + Adam"}
    summary: dict = {"none": none, "readings": {}}
    lines = [(f"The paper's schedule (lr {PAPER['lr']}, {PAPER['iterations']:,} steps, alpha_init "
             f"{PAPER['alpha_init']}, no momentum, no clipping) at {SMALL['layers']} layers x {SMALL['hidden']} "
             f"units, history {SMALL['history']}, batch {SMALL['batch_size']}, joint, seed {seed}; frame accuracy % "
             "on the test videos of split 1 (12 Breakfast, 6 50 Salads), evaluated every "
             f"{PAPER['eval_every']:,} steps. Loss: the training loss, mean of the last 1,000 steps, as "
             "reduced by the reading (windows: summed over a window's frames, ~history x the frame mean)."), ""]
    table = ["| reading | method | steps | breakfast | 50salads | loss at the end |", "|---|---|---|---|---|---|"]
    curve_lines = []
    for reading in READINGS:
        table.append(f"| {reading} ({described[reading]}) | Single, None | - | {none['breakfast']:.1f} | "
                     f"{none['50salads']:.1f} | - |")
        entry = summary["readings"].setdefault(reading, {})
        for model in ("lstm", "bnlstm", "ddlstm"):
            folder = runs / f"paper-{reading}-{model}-s{seed}"
            if not (folder / "metrics.csv").is_file():
                table.append(f"| {reading} | {names[model]} | not run | | | |")
                continue
            curves = read_curves(folder)
            steps = curves[DATASETS[0]][-1][0]
            losses = _losses(folder)
            tail = [loss for iteration, loss in losses if iteration > losses[-1][0] - 1000]
            done = (folder / "predictions.npz").is_file()
            entry[model] = {"steps": steps, "finished": done, "loss_end": float(np.mean(tail)),
                            "curves": {d: curves[d] for d in DATASETS},
                            **{d: curves[d][-1][1] for d in DATASETS}}
            table.append(f"| {reading} | {names[model]} | {steps:,}{'' if done else ' (running)'} | "
                         f"{curves['breakfast'][-1][1]:.1f} | {curves['50salads'][-1][1]:.1f} | "
                         f"{np.mean(tail):.3f} |")
            for dataset in DATASETS:
                curve_lines.append(f"| {reading} | {model} | {dataset} | " +
                                   " | ".join(f"{a:.1f}" for _, a in curves[dataset]) + " |")
    evaluations = list(range(PAPER["eval_every"], PAPER["iterations"] + 1, PAPER["eval_every"]))
    lines += table + ["", f"Accuracy at every evaluation (steps {', '.join(f'{i // 1000}k' for i in evaluations)}):",
                      "", "| reading | model | dataset | " + " | ".join(f"{i // 1000}k" for i in evaluations) + " |",
                      "|---|---|---|" + "---|" * len(evaluations), *curve_lines, ""]

    # the alphas: where every layer's ended, per reading and initial value
    alpha_lines = [("DDLSTM's alphas (per layer, alpha_1 of Breakfast's domain, alpha_2 of 50 Salads'; lower "
                    "bound 0.5 = no cross-contamination, 1 = BNLSTM's whole-batch statistics), alpha_1 / alpha_2: "
                    "at the last step; their level (median over the last 5,000 steps); the first logged step (every "
                    "250) within 0.05 of that level; and the share % of the logged steps from then on within 0.05 "
                    "of it:"), "",
                   "| reading | alpha_init | layer | end | level | reached at | within afterwards % |",
                   "|---|---|---|---|---|---|---|"]
    alpha_runs = {}
    for reading in READINGS:
        for init, suffix in ((0.5, "-a0.5"), (0.75, ""), (1.0, "-a1.0")):
            folder = runs / f"paper-{reading}-ddlstm{suffix}-s{seed}"
            if not (folder / "alphas.csv").is_file() or folder.joinpath("alphas.csv").stat().st_size < 30:
                continue
            alpha_runs[reading, init] = alphas = _alphas(folder)
            for layer, (iterations, first, second) in alphas.items():
                reached, stable, level = [], [], []  # first logged step within 0.05 of its level; then how often
                for values in (first, second):
                    final = float(np.median([v for i, v in zip(iterations, values) if i > iterations[-1] - 5000]))
                    near = [abs(v - final) <= 0.05 for v in values]
                    k = near.index(True)
                    reached.append(iterations[k])
                    stable.append(100.0 * float(np.mean(near[k:])))
                    level.append(final)
                summary["readings"].setdefault(reading, {}).setdefault("alphas", {})[f"{init}/layer{layer}"] = {
                    "end": [first[-1], second[-1]], "level": level, "reached_at": reached,
                    "within_after_%": stable, "steps": iterations[-1]}
                alpha_lines.append(f"| {reading} | {init} | {layer} | {first[-1]:.3f} / {second[-1]:.3f} | "
                                   f"{level[0]:.3f} / {level[1]:.3f} | {reached[0]:,} / {reached[1]:,} | "
                                   f"{stable[0]:.0f} / {stable[1]:.0f} |")
    lines += alpha_lines
    output.mkdir(parents=True, exist_ok=True)
    (output / "paper.md").write_text("\n".join(lines) + "\n")
    (output / "paper.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(lines))

    colours = {"lstm": "C0", "bnlstm": "C1", "ddlstm": "C2"}
    figure, axes = plt.subplots(len(READINGS), len(DATASETS) + 1, figsize=(13, 3.1 * len(READINGS)), squeeze=False)
    for row, reading in zip(axes, READINGS):
        for ax, dataset in zip(row, DATASETS):
            for model in ("lstm", "bnlstm", "ddlstm"):
                if model in summary["readings"].get(reading, {}):
                    iterations, accuracy = zip(*summary["readings"][reading][model]["curves"][dataset])
                    ax.plot(iterations, accuracy, "o-", markersize=3, color=colours[model], label=model)
            ax.axhline(none[dataset], color="grey", linestyle="--", label="none (frame classifier)")
            top = max([none[dataset]] + [a for r in summary["readings"].values() for m in ("lstm", "bnlstm", "ddlstm")
                                         if m in r for _, a in r[m]["curves"][dataset]])
            ax.set_ylim(0, top + 5)
            ax.set_xlim(0, PAPER["iterations"])
            ax.set_title(f"{reading} ({described[reading]}): {dataset}", fontsize=9)
            ax.set_ylabel("frame accuracy (%)")
            ax.legend(fontsize=7)
        ax = row[-1]
        for model in ("lstm", "bnlstm", "ddlstm"):
            folder = runs / f"paper-{reading}-{model}-s{seed}"
            if (folder / "train_log.csv").is_file():
                iterations, losses = zip(*_losses(folder))
                ax.plot(iterations, losses, color=colours[model], linewidth=0.8, label=model)
        ax.set_title(f"{reading}: training loss (as the reading reduces it)", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlim(0, PAPER["iterations"])
        ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    figure.tight_layout()
    figure.savefig(output / "paper-curves.png", dpi=110)

    figure, axes = plt.subplots(2, max(len(READINGS), SMALL["layers"]), figsize=(13, 6.6), squeeze=False)
    for ax, reading in zip(axes[0], READINGS):
        for layer, (iterations, first, second) in alpha_runs.get((reading, 0.75), {}).items():
            line = ax.plot(iterations, first, label=f"layer {layer} alpha_1")[0]
            ax.plot(iterations, second, "--", color=line.get_color(), label=f"layer {layer} alpha_2")
        ax.set_title(f"{reading}: DDLSTM alphas from 0.75", fontsize=9)
        ax.set_ylim(0.45, 1.02)
        ax.set_xlim(0, PAPER["iterations"])
        ax.legend(fontsize=6)
    for layer, ax in enumerate(axes[1], start=1):
        for init, colour in ((0.5, "C3"), (0.75, "C2"), (1.0, "C4")):
            if layer in alpha_runs.get((best, init), {}):
                iterations, first, second = alpha_runs[best, init][layer]
                ax.plot(iterations, first, color=colour, label=f"from {init}: alpha_1")
                ax.plot(iterations, second, "--", color=colour, label=f"from {init}: alpha_2")
        ax.set_title(f"{best}: layer {layer} from three initial values", fontsize=9)
        ax.set_ylim(0.45, 1.02)
        ax.set_xlim(0, PAPER["iterations"])
        ax.set_xlabel("iteration")
        ax.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(output / "paper-alphas.png", dpi=110)
    print(f"wrote {output / 'paper.md'}, paper.json, paper-curves.png, paper-alphas.png")


def curves_report(runs: Path, variants: list[str], data: Path, output: Path | None, seed: int = 0) -> None:
    """The accuracy of each run at every evaluation, one row per run and dataset (e.g. the demo's
    short schedule: `demo-*`), with the frame classifier's for reference."""
    none = frame_classifier_accuracy(data)
    found = [v for v in variants if (runs / f"{v}-s{seed}" / "predictions.npz").is_file()]
    if not found:
        raise SystemExit(f"no finished run of {variants} in {runs}")
    iterations = [i for i, _ in read_curves(runs / f"{found[0]}-s{seed}")[DATASETS[0]]]
    lines = ["| run | dataset | none | " + " | ".join(str(i) for i in iterations) + " |",
             "|---|---|---|" + "---|" * len(iterations)]
    for variant in found:
        curves = read_curves(runs / f"{variant}-s{seed}")
        for dataset in DATASETS:
            values = dict(curves[dataset])
            lines.append(f"| {variant} | {dataset} | {none[dataset]:.1f} | " +
                         " | ".join(f"{values[i]:.1f}" if i in values else "-" for i in iterations) + " |")
    text = "Frame accuracy % (test videos, split 1) at each evaluation step:\n\n" + "\n".join(lines) + "\n"
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


def calibration_report(trials: list[Path], output: Path | None) -> None:
    """One row per calibration trial (a `prepare`d data folder with a runs/ of cal-* variants): the
    feature-model fields that differ from preset v2's, the frame classifier's accuracy, and
    each model's accuracy at its last evaluation and averaged over its last three."""
    from dataclasses import asdict

    from pipeline.data.synthetic.features import feature_model

    generic = asdict(feature_model("", "v2"))
    models = [v.removeprefix("cal-") for v in VARIANTS if v.startswith("cal-")]
    lines = ["| trial | feature model (fields that differ from preset v2) | none | " +
             " | ".join(f"{m} at {VARIANTS['cal-' + m]['iterations']} (mean of the last 3 evaluations)"
                        for m in models) + " |",
             "|---|---|---|" + "---|" * len(models)]
    for trial in trials:
        saved = json.loads((trial / "prepare.json").read_text())["models"]
        diffs = {d: ", ".join(f"{k}={v}" for k, v in saved[d].items() if generic.get(k) != v) or "-" for d in DATASETS}
        changed = [diffs[DATASETS[0]]] if len(set(diffs.values())) == 1 else [f"{d}: {diffs[d]}" for d in DATASETS]
        none = frame_classifier_accuracy(trial)
        cells = []
        for model in models:
            folder = trial / "runs" / f"cal-{model}-s0"
            if not (folder / "predictions.npz").is_file():
                cells.append("-")
                continue
            curves = read_curves(folder)
            cells.append(" / ".join(f"{curves[d][-1][1]:.1f} ({sum(a for _, a in curves[d][-3:]) / 3:.1f})"
                                    for d in DATASETS))
        lines.append(f"| {trial.name} | {'; '.join(changed)} | {none['breakfast']:.1f} / {none['50salads']:.1f} | "
                     + " | ".join(cells) + " |")
    text = "Breakfast / 50 Salads frame accuracy %, test videos of split 1:\n\n" + "\n".join(lines) + "\n"
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


def _load_run(data: Path, folder: Path, changes: dict):
    """A finished run's model, layout and configuration (with `changes` applied to the latter)."""
    from pipeline.trainer import load_checkpoint
    from pipeline.training.classifier import SequenceClassifier
    from pipeline.training.config import RecurrentConfig
    from pipeline.training.inputs import Layout
    from pipeline.training.sequences import load_split

    saved = json.loads((folder / "config.json").read_text())
    config = RecurrentConfig(**{**{k: v for k, v in saved.items() if k != "datasets"}, **changes})
    kind = "insample" if "insample" in folder.name else "crossfit"
    order = [dataset.split(" split")[0] for dataset in saved["datasets"]]
    layout = Layout([load_split(data / f"{dataset}_inputs_{kind}.h5") for dataset in order], config.input_layout)
    model = SequenceClassifier(config.model, layout.input_size, layout.num_labels, config, 2)
    model.load_state_dict(load_checkpoint(folder / "checkpoint.pt")["model"])
    return model, layout, config


def reevaluate(data: Path, runs: Path, names: list[str], changes: dict, recompute: int) -> None:
    """Finished runs evaluated again, the weights as trained: with evaluation options changed
    (e.g. eval_labels=own) and / or population statistics recomputed over `recompute` batches."""
    import torch

    from pipeline.training.evaluation import evaluate, recompute_population_statistics
    from pipeline.training.inputs import WindowSampler

    torch.set_num_threads(1)
    for name in names:
        model, layout, config = _load_run(data, runs / name, changes)
        if recompute:
            recompute_population_statistics(model, WindowSampler(layout, config), recompute, 10**6, "cpu")
        scores = {d: round(r["pooled"].accuracy, 1) for d, r in evaluate(model, layout, config, "cpu").items()}
        print(json.dumps({"run": name, "changes": changes, "recomputed_batches": recompute, "accuracy": scores}),
              flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="synthesised features, logits and boundary inputs of split 1")
    p.add_argument("--real", required=True, help="folder with breakfast/ and 50salads/ MS-TCN ground truth")
    p.add_argument("--data", required=True)
    p.add_argument("--breakfast-participants", type=int, default=24)
    p.add_argument("--salads-participants", type=int, default=12)
    p.add_argument("--preset", default="v2", help="feature model (pipeline.data.synthetic.features.PRESETS): v1 "
                   "is the first study's, v2 the calibrated harder one")
    p.add_argument("--feature", nargs="*", default=[], metavar="[DATASET.]KEY=VALUE",
                   help="feature-model fields changed from the preset's, for both datasets or one")
    p.add_argument("--boundary-history", type=int, default=50, help="the boundary LSTM's horizon (first study: 100)")
    p.add_argument("--boundary-kinds", nargs="+", default=["crossfit"], choices=["crossfit", "insample"],
                   help="boundary inputs to build (the first study built both)")
    p = commands.add_parser("run", help="train variants")
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--variants", nargs="+", default=["lstm", "bnlstm", "ddlstm"], choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--jobs", type=int, default=2)
    p = commands.add_parser("reevaluate", help="finished runs evaluated again with other evaluation options")
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--names", nargs="+", required=True, help="run folders, e.g. ddlstm-s0")
    p.add_argument("--set", nargs="*", default=[], help="KEY=VALUE evaluation options, e.g. eval_labels=own")
    p.add_argument("--recompute", type=int, default=0, help="recompute population statistics over this many batches")
    p = commands.add_parser("paper-report", help="the paper's schedule under each reading: tables and figures")
    p.add_argument("--runs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--data", required=True, help="the prepared data: the frame classifier's own accuracy")
    p.add_argument("--best", default="fa", choices=list(READINGS), help="the reading of the alpha_init comparison")
    p = commands.add_parser("curves-report", help="each run's accuracy at every evaluation")
    p.add_argument("--runs", required=True)
    p.add_argument("--variants", nargs="+", required=True, choices=list(VARIANTS))
    p.add_argument("--data", required=True)
    p.add_argument("--output", help="Markdown file to write")
    p = commands.add_parser("calibration-report", help="one row per calibration trial")
    p.add_argument("--trials", nargs="+", required=True, help="prepared data folders with runs/cal-*")
    p.add_argument("--output", help="Markdown file to write")
    p = commands.add_parser("report", help="table and figure of finished runs")
    p.add_argument("--runs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--data", help="the prepared data: adds the frame classifier's own accuracy")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(Path(args.real), Path(args.data),
                {"breakfast": args.breakfast_participants, "50salads": args.salads_participants}, 1,
                feature_models(args.preset, args.feature), args.boundary_history, tuple(args.boundary_kinds))
    elif args.command == "run":
        run(Path(args.data), Path(args.runs), args.variants, args.seeds, args.jobs)
    elif args.command == "reevaluate":
        changes = {}
        for item in args.set:
            key, _, value = item.partition("=")
            changes[key] = int(value) if value.isdigit() else value
        reevaluate(Path(args.data), Path(args.runs), args.names, changes, args.recompute)
    elif args.command == "paper-report":
        paper_report(Path(args.runs), Path(args.output), Path(args.data), args.best)
    elif args.command == "curves-report":
        curves_report(Path(args.runs), args.variants, Path(args.data), Path(args.output) if args.output else None)
    elif args.command == "calibration-report":
        calibration_report([Path(t) for t in args.trials], Path(args.output) if args.output else None)
    else:
        report(Path(args.runs), Path(args.output), Path(args.data) if args.data else None)
    return 0



if __name__ == "__main__":
    sys.exit(main())
