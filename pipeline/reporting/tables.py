"""The paper's tables from the runs' metrics: Table 1 (methods x pairs), Table 2 (DDLSTM by depth),
and the segmentation metrics behind Table 1, each as CSV, Markdown and LaTeX.

Inputs are the files the workflow writes, found by their paths:

    results/recurrent/<D1>+<D2>/split<k>/<protocol>-<model>-L<depth>/metrics.csv
    results/features/<dataset>/split<k>/none.json

Every number is the final evaluation's value averaged over the splits present (the paper
averages over 4). With `paper=True` (the real datasets, named breakfast / 50salads / mpii) the
paper's own figures (SPEC.md 5) are shown beside ours.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from .paper import PAPER_TABLE1, PAPER_TABLE2

RUN = re.compile(r"(?P<d1>[^/+]+)\+(?P<d2>[^/]+)/split(?P<split>\d+)/(?P<protocol>[a-z0-9]+)-(?P<model>[a-z]+)"
                 r"-L(?P<depth>\d+)/metrics\.csv$")
NONE = re.compile(r"(?P<dataset>[^/]+)/split(?P<split>\d+)/none\.json$")

# Table 1's rows: (label, protocol, model); "none" is the frame classifier alone.
TABLE1_ROWS = (
    ("Single, None", "none", None),
    ("Joint, LSTM", "joint", "lstm"),
    ("Joint, BNLSTM", "joint", "bnlstm"),
    ("D1,D2, LSTM", "d1d2", "lstm"),
    ("D2,D1, LSTM", "d2d1", "lstm"),
    ("Joint, DDLSTM", "joint", "ddlstm"),
)
METRICS = ("accuracy", "edit", "f1@10", "f1@25", "f1@50")


def read_runs(paths) -> dict:
    """{(d1, d2, protocol, model, depth): {dataset: {metric: [value per split]}}} of final evaluations."""
    runs: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for path in map(Path, paths):
        match = RUN.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a run's metrics.csv (<D1>+<D2>/split<k>/<protocol>-<model>-L<depth>/)")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"{path}: no metrics rows")
        last = max(int(row["iteration"]) for row in rows)
        key = (match["d1"], match["d2"], match["protocol"], match["model"], int(match["depth"]))
        for row in rows:
            if int(row["iteration"]) == last:
                for metric in METRICS:
                    runs[key][row["dataset"]][metric].append(float(row[metric]))
    return runs


def read_none(paths) -> dict:
    """{dataset: [frame accuracy (%) per split]}."""
    values: dict = defaultdict(list)
    for path in map(Path, paths):
        match = NONE.search(path.as_posix())
        if match is None:
            raise ValueError(f"{path}: not a none.json (<dataset>/split<k>/none.json)")
        values[match["dataset"]].append(100.0 * json.loads(path.read_text())["frame_accuracy"])
    return values


def _mean(values) -> float | None:
    return sum(values) / len(values) if values else None


def table1(runs: dict, none: dict, pairs, depth: int, paper: bool) -> list[dict]:
    rows = []
    for label, protocol, model in TABLE1_ROWS:
        row = {"method": label}
        for d1, d2 in pairs:
            for position, dataset in enumerate((d1, d2)):
                column = f"{d1}/{d2} D{position + 1}"
                if protocol == "none":
                    value = _mean(none.get(dataset, []))
                else:
                    value = _mean(runs.get((d1, d2, protocol, model, depth), {}).get(dataset, {}).get("accuracy", []))
                row[column] = value
                if paper:
                    row[column + " (paper)"] = PAPER_TABLE1.get((d1, d2), {}).get(label, (None, None))[position]
        rows.append(row)
    return rows


def table2(runs: dict, pairs, depths, paper: bool) -> list[dict]:
    rows = []
    for depth in depths:
        row = {"layers": depth}
        for d1, d2 in pairs:
            for position, dataset in enumerate((d1, d2)):
                column = f"{d1}/{d2} D{position + 1}"
                row[column] = _mean(runs.get((d1, d2, "joint", "ddlstm", depth), {}).get(dataset, {}).get("accuracy", []))
                if paper:
                    row[column + " (paper)"] = PAPER_TABLE2.get((d1, d2), {}).get(depth, (None, None))[position]
        rows.append(row)
    return rows


def segmentation_table(runs: dict, pairs, depth: int) -> list[dict]:
    rows = []
    for label, protocol, model in TABLE1_ROWS[1:]:
        for d1, d2 in pairs:
            for dataset in (d1, d2):
                values = runs.get((d1, d2, protocol, model, depth), {}).get(dataset)
                if values:
                    rows.append({"method": label, "pair": f"{d1}/{d2}", "dataset": dataset,
                                 **{metric: _mean(values[metric]) for metric in METRICS},
                                 "splits": len(values["accuracy"])})
    return rows


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def write_table(rows: list[dict], stem: Path, caption: str) -> list[Path]:
    """`stem`.csv, .md and .tex of the same rows."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    lines = [f"{caption}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[c]) for c in columns) + " |" for row in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")

    def tex(text):
        return str(text).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    tex_lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}",
                 r"\hline", " & ".join(tex(c) for c in columns) + r" \\", r"\hline"]
    tex_lines += [" & ".join(tex(_format(row[c])) for c in columns) + r" \\" for row in rows]
    tex_lines += [r"\hline", r"\end{tabular}", rf"\caption{{{tex(caption)}}}", r"\end{table}"]
    stem.with_suffix(".tex").write_text("\n".join(tex_lines) + "\n")
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def write_tables(metrics_paths, none_paths, pairs, depths, table1_depth: int, output_dir, paper: bool = False):
    runs, none = read_runs(metrics_paths), read_none(none_paths)
    output_dir = Path(output_dir)
    source = "paper datasets" if paper else "synthetic data (not the paper's datasets)"
    splits = sorted({len(v) for v in none.values()})
    note = f"frame accuracy %, mean over {'/'.join(map(str, splits))} splits, {source}"
    write_table(table1(runs, none, pairs, table1_depth, paper), output_dir / "table1",
                f"Table 1: online frame accuracy, {table1_depth}-layer models ({note})")
    write_table(table2(runs, pairs, depths, paper), output_dir / "table2",
                f"Table 2: Joint DDLSTM by number of layers ({note})")
    write_table(segmentation_table(runs, pairs, table1_depth), output_dir / "segmentation",
                f"Segmentation metrics of Table 1's runs (accuracy, edit, F1@10/25/50; MS-TCN definitions, "
                f"background excluded; {source})")
