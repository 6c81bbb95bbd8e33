"""The paper's tables from the runs' metrics, each as CSV, Markdown and LaTeX: Table 1 (methods x
pairs), Table 2 (DDLSTM by depth), the segmentation metrics behind Table 1, and where configured
Tables 3 and 4 (one dataset against published results: joint LSTM and DDLSTM online, DDLSTM with
look-ahead) and Table 5 (a small dataset learnt from a larger one, one split).

Inputs are the files the workflow writes, found by their paths:

    results/recurrent/<D1>+<D2>/split<k>/<protocol>-<model>-L<depth>/metrics.csv
    results/features/<dataset>/split<k>/none.json

Every number is the final evaluation's value averaged over the splits present (the paper
averages over 4; Table 5 uses one). With `paper=True` (the real datasets, named breakfast /
50salads / mpii) the paper's own figures are shown beside ours.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from ..io import write_csv, write_text
from .paper import PAPER_COMPARISON, PAPER_QUOTED, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE5

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
# Tables 3 and 4's own rows: (label, protocol, model, mode).
COMPARISON_ROWS = (
    ("LSTM", "joint", "lstm", "online"),
    ("DDLSTM", "joint", "ddlstm", "online"),
    ("DDLSTM (look-ahead)", "lookahead", "ddlstm", "offline single-pass"),
)
SEGMENTAL = ("edit", "f1@10", "f1@25", "f1@50")
# Segmental metrics twice: background left out (ours), and MS-TCN's eval.py convention ("_mstcn").
METRICS = ("accuracy", *SEGMENTAL, *(f"{name}_mstcn" for name in SEGMENTAL))


def read_runs(paths) -> dict:
    """{(d1, d2, protocol, model, depth): {dataset: {metric: {split: value}}}} of final evaluations."""
    runs: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
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
                    if row.get(metric) not in (None, ""):  # runs of older versions lack the MS-TCN columns
                        runs[key][row["dataset"]][metric][int(match["split"])] = float(row[metric])
    return runs


def scores(runs: dict, key: tuple, dataset: str, metric: str = "accuracy", split: int | None = None) -> list[float]:
    """The final `metric` of `dataset` in the runs `key`, one value per split (or of `split` only)."""
    values = runs.get(key, {}).get(dataset, {}).get(metric, {})
    return list(values.values()) if split is None else [values[split]] if split in values else []


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
                    value = _mean(scores(runs, (d1, d2, protocol, model, depth), dataset))
                row[column] = value
                if paper and (d1, d2) in PAPER_TABLE1:
                    row[column + " (paper)"] = PAPER_TABLE1[(d1, d2)][label][position]
        rows.append(row)
    return rows


def table2(runs: dict, pairs, depths, paper: bool) -> list[dict]:
    rows = []
    for depth in depths:
        row = {"layers": depth}
        for d1, d2 in pairs:
            for position, dataset in enumerate((d1, d2)):
                column = f"{d1}/{d2} D{position + 1}"
                row[column] = _mean(scores(runs, (d1, d2, "joint", "ddlstm", depth), dataset))
                if paper and (d1, d2) in PAPER_TABLE2:
                    row[column + " (paper)"] = PAPER_TABLE2[(d1, d2)].get(depth, (None, None))[position]
        rows.append(row)
    return rows


def segmentation_table(runs: dict, pairs, depth: int) -> list[dict]:
    rows = []
    for label, protocol, model in TABLE1_ROWS[1:]:
        for d1, d2 in pairs:
            for dataset in (d1, d2):
                key = (d1, d2, protocol, model, depth)
                if scores(runs, key, dataset):
                    rows.append({"method": label, "pair": f"{d1}/{d2}", "dataset": dataset,
                                 **{metric.replace("_mstcn", " (MS-TCN)"): _mean(scores(runs, key, dataset, metric))
                                    for metric in METRICS},
                                 "splits": len(scores(runs, key, dataset))})
    return rows


def comparison_table(runs: dict, entries, depth: int, table: str, feature_datasets, paper: bool) -> list[dict]:
    """Table 3 or 4: each (dataset, (d1, d2)) entry's joint LSTM, joint DDLSTM and DDLSTM with
    look-ahead on `dataset`, then (with `paper`) the published results the paper quotes."""
    rows = []
    for dataset, (d1, d2) in entries:
        source = "features" if dataset in feature_datasets else "videos"
        partner = d2 if dataset == d1 else d1
        for label, protocol, model, mode in COMPARISON_ROWS:
            row = {"method": f"{label}, {dataset} with {partner}", "mode": mode, "input": source,
                   "accuracy": _mean(scores(runs, (d1, d2, protocol, model, depth), dataset))}
            if paper:
                row["accuracy (paper)"] = PAPER_COMPARISON[table].get((label, source))
            rows.append(row)
    if paper:
        rows += [{"method": method, "mode": mode, "input": "published", "accuracy": None, "accuracy (paper)": value}
                 for method, mode, value in PAPER_QUOTED[table]]
    return rows


def table5(runs: dict, pairs, split: int, depth: int, paper: bool) -> list[dict]:
    """Pre-train/fine-tune LSTM against joint DDLSTM for each (large D1, small D2) pair on one split.
    Pt/ft's D1 column is the model pre-trained on D2 and fine-tuned on D1 (scored on D1), its D2
    column the reverse: each is the model last trained on that dataset."""
    rows = []
    methods = (("Pt/ft, LSTM", {0: ("d2d1", "lstm"), 1: ("d1d2", "lstm")}),
               ("Joint, DDLSTM", {0: ("joint", "ddlstm"), 1: ("joint", "ddlstm")}))
    for label, by_position in methods:
        row = {"method": label}
        for d1, d2 in pairs:
            for position, dataset in enumerate((d1, d2)):
                column = f"{d1}/{d2} D{position + 1}"
                row[column] = _mean(scores(runs, (d1, d2, *by_position[position], depth), dataset, split=split))
                if paper and (d1, d2) in PAPER_TABLE5:
                    row[column + " (paper)"] = PAPER_TABLE5[(d1, d2)][label][position]
        rows.append(row)
    return rows


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def write_table(rows: list[dict], stem: Path, caption: str) -> list[Path]:
    """`stem`.csv, .md and .tex of the same rows."""
    columns = list(rows[0])
    write_csv([{k: ("" if v is None else v) for k, v in row.items()} for row in rows], stem.with_suffix(".csv"),
              fieldnames=columns)
    lines = [f"{caption}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[c]) for c in columns) + " |" for row in rows]
    write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")

    def tex(text):
        return str(text).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    tex_lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}",
                 r"\hline", " & ".join(tex(c) for c in columns) + r" \\", r"\hline"]
    tex_lines += [" & ".join(tex(_format(row[c])) for c in columns) + r" \\" for row in rows]
    tex_lines += [r"\hline", r"\end{tabular}", rf"\caption{{{tex(caption)}}}", r"\end{table}"]
    write_text(stem.with_suffix(".tex"), "\n".join(tex_lines) + "\n")
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def lookahead_of_features(feature_datasets) -> str:
    """What a caption says of datasets read from precomputed features: not strictly online."""
    names = ", ".join(sorted(feature_datasets))
    return (f"{names} read from precomputed features: MS-TCN's I3D features of a frame come from a 21-frame window "
            "centred on it (10 frames ahead: 0.67 s at 15 fps, 0.33 s at 30 fps), so results on them are not "
            "strictly online")


def write_tables(metrics_paths, none_paths, pairs, depths, table1_depth: int, output_dir, paper: bool = False,
                 table3=(), table4=(), table5_pairs=(), table5_split: int = 1, feature_datasets=(), readings: str = ""):
    """Every table; Tables 3 and 4 take (dataset, (d1, d2)) entries, Table 5 (d1, d2) pairs. `readings`
    (how the runs read the paper where it is terse) ends every accuracy table's caption."""
    runs, none = read_runs(metrics_paths), read_none(none_paths)
    output_dir = Path(output_dir)
    source = "the paper's numbers beside ours where its datasets are" if paper else "this configuration's datasets"
    splits = sorted({len(v) for v in none.values()})
    if feature_datasets:
        source += "; " + lookahead_of_features(feature_datasets)
    note = f"frame accuracy %, mean over {'/'.join(map(str, splits))} splits, {source}" + \
        (f"; {readings}" if readings else "")
    write_table(table1(runs, none, pairs, table1_depth, paper), output_dir / "table1",
                f"Table 1: online frame accuracy, {table1_depth}-layer models ({note})")
    write_table(table2(runs, pairs, depths, paper), output_dir / "table2",
                f"Table 2: Joint DDLSTM by number of layers ({note})")
    write_table(segmentation_table(runs, pairs, table1_depth), output_dir / "segmentation",
                f"Segmentation metrics of Table 1's runs (accuracy, edit, F1@10/25/50; MS-TCN's definitions): "
                f"edit and F1 leave out the dataset's background class; the (MS-TCN) columns follow MS-TCN's "
                f"eval.py, which leaves out only a class named 'background' (so Breakfast's SIL counts), for "
                f"comparison with MS-TCN-family results ({source})")
    for name, entries, subject in (("table3", table3, "Breakfast in the paper"),
                                   ("table4", table4, "50 Salads mid-level in the paper")):
        if entries:
            write_table(comparison_table(runs, entries, table1_depth, name, feature_datasets, paper), output_dir / name,
                        f"Table {name[-1]}: against published results ({subject}): joint LSTM and DDLSTM online, "
                        f"joint DDLSTM with look-ahead (half a history of future frames), {table1_depth}-layer models; "
                        f"input: the dataset read from precomputed features (the paper's 'w/f') or from its videos "
                        f"({note})")
    if table5_pairs:
        write_table(table5(runs, table5_pairs, table5_split, table1_depth, paper), output_dir / "table5",
                    f"Table 5: a small dataset (D2) learnt from a larger one (D1), split {table5_split}, "
                    f"{table1_depth}-layer models; Pt/ft: each column the LSTM fine-tuned last on that dataset "
                    f"(frame accuracy %, {source}" + (f"; {readings})" if readings else ")"))
