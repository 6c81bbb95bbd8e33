"""Fixed against adaptive batch makeup (`domain_share: adaptive`, pipeline/training/makeup.py): the table
and the figure of the workflow's comparison (`adaptive_share_comparison: true`), from the joint runs of
each pair with the configured fixed share (Table 1's runs) and their twins with the adaptive share
(run folders ending in `-adaptive`).

- Table (`adaptive_share.csv`, `.md`, `.tex`): per pair, dataset and joint model (LSTM, BNLSTM,
  DDLSTM), the fixed and the adaptive runs' frame accuracy (mean over splits and seeds, ± the
  standard deviation over seeds of the split mean), the mean paired difference adaptive - fixed over
  (split, seed) with its Student's t 95% interval (`uncertainty.paired_difference`: both runs of a
  pair saw the same split and seed), and the dataset's share of the adaptive batches in percent:
  averaged over every step, and at the last step (each the mean over the runs).
- Figure (`adaptive_share.png`): one panel per pair, D1's share of the batch at every step for each
  model, the mean over the runs with their range as a band; the bounds dashed, the fixed share dotted.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .figures import _save, plt
from .runs import read_rows, read_runs, values
from .tables import JOINT_MODELS, write_table
from .uncertainty import paired_difference, spread_over_seeds

SHARES = re.compile(r"(?P<datasets>[^/]+)/split(?P<split>\d+)/joint-(?P<model>[a-z]+)-L(?P<depth>\d+)-adaptive"
                    r"(?:-s(?P<seed>\d+))?/shares\.csv$")


def read_shares(paths) -> dict:
    """{(*datasets, model, depth): [(iterations (S,), shares (S, d), share_min)]}, one entry per run, from
    the adaptive runs' shares.csv (share_min from the run's config.json beside it)."""
    runs = defaultdict(list)
    for path in map(Path, paths):
        match = SHARES.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not an adaptive run's shares.csv (<D1>+<D2>/split<k>/joint-<model>-L<depth>"
                             "-adaptive[-s<seed>]/)")
        rows = read_rows(path, "rows")
        columns = sorted((c for c in rows[0] if c.startswith("share_")), key=lambda c: int(c.split("_")[1]))
        shares = np.array([[float(row[c]) for c in columns] for row in rows])
        share_min = json.loads((path.parent / "config.json").read_text())["share_min"]
        runs[(*match["datasets"].split("+"), match["model"], int(match["depth"]))].append(
            (np.array([int(row["iteration"]) for row in rows]), shares, share_min))
    return runs


def share_table(runs: dict, shares: dict, pairs, depth: int) -> list[dict]:
    """The table's rows (module docstring)."""
    rows = []
    for pair in pairs:
        for position, dataset in enumerate(pair):
            for label, model in JOINT_MODELS:
                fixed = values(runs, (*pair, "joint", model, depth), dataset)
                adaptive = values(runs, (*pair, "joint-adaptive", model, depth), dataset)
                if not fixed and not adaptive:
                    continue
                difference = paired_difference(adaptive, fixed)
                logged = shares.get((*pair, model, depth), [])
                rows.append({
                    "pair": "/".join(pair), "dataset": dataset, "model": label,
                    "fixed": spread_over_seeds(fixed), "adaptive": spread_over_seeds(adaptive),
                    "adaptive - fixed": None if difference is None else difference.mean,
                    "pairs of runs (split x seed)": 0 if difference is None else difference.n,
                    "95% CI low": None if difference is None else difference.low,
                    "95% CI high": None if difference is None else difference.high,
                    "share %, mean over steps": (100 * float(np.mean([s[:, position].mean() for _, s, _ in logged]))
                                                 if logged else None),
                    "share %, last step": 100 * float(np.mean([s[-1, position] for _, s, _ in logged])) if logged else None,
                })
    return rows


def share_figure(shares: dict, pairs, depth: int, fixed_share: float, output) -> Path:
    """D1's share of the batch over training, one panel per pair (module docstring)."""
    figure, axes = plt.subplots(1, len(pairs), figsize=(4.8 * len(pairs), 3.6), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        bound = None
        for label, model in JOINT_MODELS:
            logged = shares.get((*pair, model, depth), [])
            if not logged:
                continue
            steps = min(len(iterations) for iterations, _, _ in logged)
            iterations = logged[0][0][:steps]
            first = np.stack([s[:steps, 0] for _, s, _ in logged])  # (runs, steps)
            line = ax.plot(iterations, first.mean(0), linewidth=1.2, label=f"{label} ({len(logged)} runs)")[0]
            ax.fill_between(iterations, first.min(0), first.max(0), color=line.get_color(), alpha=0.15, linewidth=0)
            bound = logged[0][2]
        ax.axhline(fixed_share, color="0.4", linestyle=":", linewidth=1, label=f"fixed share {fixed_share:g}")
        if bound is not None:
            for value in (bound, 1 - bound):
                ax.axhline(value, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{pair[0]} / {pair[1]}", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"share of the batch from {pair[0]} (D1)")
        ax.legend(fontsize=6)
    figure.suptitle(f"Adaptive batch makeup: D1's share during training, {depth}-layer joint models (mean over "
                    "splits and seeds, band: their range; dashed: the bounds)", fontsize=8)
    return _save(figure, output)


def write_comparison(metrics_paths, shares_paths, pairs, depth: int, fixed_share: float, table, figure,
                     readings: str = "") -> None:
    runs, shares = read_runs(metrics_paths), read_shares(shares_paths)
    rows = share_table(runs, shares, pairs, depth)
    if not rows:
        raise ValueError(f"no joint runs of the pairs {['+'.join(p) for p in pairs]} at depth {depth} among the metrics")
    write_table(rows, Path(table),
                f"Fixed against adaptive batch makeup: joint models' online frame accuracy %, {depth} layers, with "
                f"the fixed share {fixed_share:g} of D1 and with domain_share adaptive (each dataset's share following "
                "its training loss relative to its first step's); mean over splits and seeds ± the standard deviation "
                "over seeds of the split mean; adaptive - fixed: the mean paired difference over (split, seed) in "
                "points with Student's t 95% confidence interval; share: the dataset's percentage of the adaptive "
                "batches (mean over runs)" + (f"; {readings}" if readings else ""))
    share_figure(shares, pairs, depth, fixed_share, figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ddlstm adaptive-share",
        description="The table and figure of fixed against adaptive batch makeup from the joint runs of each pair.")
    parser.add_argument("--metrics", nargs="+", required=True,
                        help="metrics.csv of the fixed runs (<protocol>-<model>-L<depth>[-s<seed>]/) and of the "
                             "adaptive ones (...-L<depth>-adaptive[-s<seed>]/)")
    parser.add_argument("--shares", nargs="+", required=True, help="shares.csv of the adaptive runs")
    parser.add_argument("--pairs", nargs="+", required=True, help="dataset pairs as D1+D2, in table order")
    parser.add_argument("--depth", type=int, required=True, help="the joint models' depth (Table 1's)")
    parser.add_argument("--fixed-share", type=float, required=True, help="D1's share of the fixed runs' batches")
    parser.add_argument("--readings", default="", help="how the runs read the paper (ends the caption)")
    parser.add_argument("--table", required=True, help="the table's path without extension (.csv, .md, .tex)")
    parser.add_argument("--figure", required=True, help="the figure's PNG path")
    args = parser.parse_args(argv)
    pairs = []
    for value in args.pairs:
        if value.count("+") != 1:
            parser.error(f"a pair is written D1+D2, not {value!r}")
        pairs.append(tuple(value.split("+")))
    write_comparison(args.metrics, args.shares, pairs, args.depth, args.fixed_share, args.table, args.figure,
                     args.readings)
    return 0
