"""Convergence study of the recurrent models on real label sequences with synthesised features.

Does DDLSTM help, and when? This script builds the data once (`prepare`: MS-TCN folders with
features synthesised from the real Breakfast and 50 Salads ground truth, the linear frame classifier
and the cross-fitted boundary LSTM of split 1), trains named variants of the Table 1 methods with
an evaluation every `eval_every` steps (`run`: one process per run, one thread each, `--jobs` at a
time), and summarises them (`report`: Markdown tables of the accuracy at 2000 steps, at the last and
best evaluation, and of the edit score, per variant, mean over seeds, and a figure of the accuracy curves and DDLSTM's alphas over training);
`reevaluate` scores finished runs again with other evaluation options (e.g. `eval_labels=own`, or
population statistics recomputed), the weights as trained.

    python studies/convergence.py prepare --real ../shared/data/real --data studies/out/data
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
DATASETS = ("breakfast", "50salads")


def prepare(real: Path, data: Path, participants: dict, split: int) -> None:
    """Synthesised-feature folders, linear logits and boundary inputs (cross-fitted and in-sample)."""
    from pipeline.data.precomputed import FeatureSource
    from pipeline.data.readers import load_dataset
    from pipeline.data.synthetic.features import write_folder
    from pipeline.features.linear import LinearConfig, train_and_extract
    from pipeline.training.boundary import BoundaryConfig, boundary_predictions, write_with_boundary
    from pipeline.training.sequences import load_split

    specs = {"breakfast": {"fps": 15, "background": "SIL"},
             "50salads": {"fps": 30, "relabel": {"action_start": "background", "action_end": "background"},
                          "background": "background"}}
    for name in DATASETS:
        folder = data / "synfeatures" / name
        if not (folder / "synthesis.json").is_file():
            write_folder(real / name, folder, participants=participants[name], videos_per_participant=2)
        dataset = load_dataset({"name": name, "format": "mstcn", "annotations": str(folder), **specs[name]})
        logits = data / f"{name}_logits.h5"
        if not logits.is_file():
            train_and_extract(dataset, split, FeatureSource(dataset, fps=15), LinearConfig(max_frames=100_000),
                              logits, data / f"{name}_linear")
        for kind, folds in (("crossfit", 4), ("insample", 1)):
            inputs = data / f"{name}_inputs_{kind}.h5"
            if not inputs.is_file():
                config = BoundaryConfig(history=100, hidden=32, target_std=5.0, batch_size=64, iterations=1500,
                                        lr=0.05, momentum=0.9, folds=folds, device="cpu")
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
    """Every (variant, seed) not done yet, `jobs` processes at a time, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    queue = [(v, s) for v in variants for s in seeds if not (runs / f"{v}-s{s}" / "predictions.npz").is_file()]
    active: list = []  # (process, name, start, log file)
    while queue or active:
        while queue and len(active) < jobs:
            variant, seed = queue.pop(0)
            folder = runs / f"{variant}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            log = open(folder / "run.log", "w")  # noqa: SIM115 (the run's output; closed when it ends)
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
                status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                print(f"{status} {name} in {time.monotonic() - started:.0f} s", flush=True)


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


def _load_run(data: Path, folder: Path, changes: dict):
    """A finished run's model, layout and configuration (with `changes` applied to the latter)."""
    import torch

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
    model.load_state_dict(torch.load(folder / "checkpoint.pt", weights_only=False)["model"])
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
    p = commands.add_parser("report", help="table and figure of finished runs")
    p.add_argument("--runs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--data", help="the prepared data: adds the frame classifier's own accuracy")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(Path(args.real), Path(args.data),
                {"breakfast": args.breakfast_participants, "50salads": args.salads_participants}, 1)
    elif args.command == "run":
        run(Path(args.data), Path(args.runs), args.variants, args.seeds, args.jobs)
    elif args.command == "reevaluate":
        changes = {}
        for item in args.set:
            key, _, value = item.partition("=")
            changes[key] = int(value) if value.isdigit() else value
        reevaluate(Path(args.data), Path(args.runs), args.names, changes, args.recompute)
    else:
        report(Path(args.runs), Path(args.output), Path(args.data) if args.data else None)
    return 0



if __name__ == "__main__":
    sys.exit(main())
