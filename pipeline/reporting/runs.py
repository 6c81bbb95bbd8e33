"""The runs' final scores as the tables and figures read them, from the files the workflow writes:

    results/recurrent/<D1>+<D2>/split<k>/<protocol>-<model>-L<depth>[-adaptive][-s<seed>]/metrics.csv
    results/groups/<D1>+<D2>+<D3>.../split<k>/joint-<model>-L<depth>[-s<seed>]/metrics.csv
    results/features/<dataset>/split<k>/none.json

A run directory without `-s<seed>` holds the first seed of the configuration's `seeds`; one with
`-adaptive` a joint run with the adaptive batch makeup, keyed as protocol "joint-adaptive". Every value
is a run's final evaluation; a table cell is the mean over splits and seeds, with the spread over
seeds (`cell`, `uncertainty.Spread`).
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from .uncertainty import Spread, spread_over_seeds

RUN = re.compile(r"(?P<datasets>[^/]+)/split(?P<split>\d+)/(?P<protocol>[a-z0-9]+)-(?P<model>[a-z]+)"
                 r"-L(?P<depth>\d+)(?P<variant>-adaptive)?(?:-s(?P<seed>\d+))?/metrics\.csv$")
NONE = re.compile(r"(?P<dataset>[^/]+)/split(?P<split>\d+)/none\.json$")
FIRST_SEED = ""  # the seed of a run directory without -s<seed>
SEGMENTAL = ("edit", "f1@10", "f1@25", "f1@50")
# Segmental metrics twice: background left out (ours), and MS-TCN's eval.py convention ("_mstcn").
METRICS = ("accuracy", *SEGMENTAL, *(f"{name}_mstcn" for name in SEGMENTAL))


def read_rows(path: Path, what: str) -> list[dict]:
    """A run's CSV log as dicts, one per row; a log without rows is an error naming the file."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no {what}")
    return rows


def read_runs(paths) -> dict:
    """{(*datasets, protocol, model, depth): {dataset: {metric: {(split, seed): value}}}} of final
    evaluations; `seed` is FIRST_SEED or the digits after -s."""
    runs: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for path in map(Path, paths):
        match = RUN.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a run's metrics.csv (<D1>+<D2>[+...]/split<k>/<protocol>-<model>-L<depth>"
                             "[-adaptive][-s<seed>]/)")
        rows = read_rows(path, "metrics rows")
        last = max(int(row["iteration"]) for row in rows)
        key = (*match["datasets"].split("+"), match["protocol"] + (match["variant"] or ""), match["model"],
               int(match["depth"]))
        sample = (int(match["split"]), match["seed"] or FIRST_SEED)
        for row in rows:
            if int(row["iteration"]) == last:
                for metric in METRICS:
                    if row.get(metric) not in (None, ""):  # runs of older versions lack the MS-TCN columns
                        runs[key][row["dataset"]][metric][sample] = float(row[metric])
    return runs


def values(runs: dict, key: tuple, dataset: str, metric: str = "accuracy", splits=None) -> dict:
    """{(split, seed): value} of `dataset` in the runs `key` (of `splits` only, when given)."""
    found = runs.get(key, {}).get(dataset, {}).get(metric, {})
    return {sample: v for sample, v in found.items() if splits is None or sample[0] in splits}


def cell(runs: dict, key: tuple, dataset: str, metric: str = "accuracy", splits=None) -> Spread | None:
    """The mean over splits and seeds of `dataset`'s final `metric` in the runs `key`, with the
    standard deviation over seeds of the split-averaged value; None without runs."""
    return spread_over_seeds(values(runs, key, dataset, metric, splits))


def read_none(paths) -> dict:
    """{dataset: {split: frame accuracy (%)}}."""
    found: dict = defaultdict(dict)
    for path in map(Path, paths):
        match = NONE.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a none.json (<dataset>/split<k>/none.json)")
        found[match["dataset"]][int(match["split"])] = 100.0 * json.loads(path.read_text())["frame_accuracy"]
    return found


def none_cell(none: dict, dataset: str, splits=None) -> Spread | None:
    """The frame classifier alone: its mean over splits (no seed: it is not a recurrent run)."""
    return spread_over_seeds({(split, FIRST_SEED): v for split, v in none.get(dataset, {}).items()
                              if splits is None or split in splits})
