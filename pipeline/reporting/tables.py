"""The paper's tables from the runs' metrics, each as CSV, Markdown and LaTeX: Table 1 (methods x
pairs), Table 2 (DDLSTM by depth), the segmentation metrics behind Table 1, and where configured
Tables 3 and 4 (one dataset against published results: joint LSTM and DDLSTM online, DDLSTM with
look-ahead), Table 5 (a small dataset learnt from a larger one, one split), and beyond the paper
the comparison of methods with confidence intervals (two or more seeds) and the groups of three or
more datasets trained at once.

Every cell is the mean over the splits and seeds present of the runs' final evaluation (`runs.py`);
with two or more seeds it shows the standard deviation over seeds beside it (`29.1 ± 0.8`; in the
CSV a column of its own, "<column> sd"). With `paper=True` (the real datasets, named breakfast /
50salads / mpii) the paper's own figures are shown beside ours.
"""

from __future__ import annotations

from pathlib import Path

from ..io import write_csv, write_text
from .paper import PAPER_COMPARISON, PAPER_QUOTED, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE5
from .runs import METRICS, cell, none_cell, read_none, read_runs, values
from .uncertainty import Spread, paired_difference

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
# The comparison table's differences: (label, minuend model, subtrahend model), joint runs.
DIFFERENCES = (("DDLSTM - LSTM", "ddlstm", "lstm"), ("DDLSTM - BNLSTM", "ddlstm", "bnlstm"),
               ("BNLSTM - LSTM", "bnlstm", "lstm"))
JOINT_MODELS = (("LSTM", "lstm"), ("BNLSTM", "bnlstm"), ("DDLSTM", "ddlstm"))


def table1(runs: dict, none: dict, pairs, depth: int, paper: bool) -> list[dict]:
    rows = []
    for label, protocol, model in TABLE1_ROWS:
        row = {"method": label}
        for d1, d2 in pairs:
            for position, dataset in enumerate((d1, d2)):
                column = f"{d1}/{d2} D{position + 1}"
                if protocol == "none":
                    row[column] = none_cell(none, dataset)
                else:
                    row[column] = cell(runs, (d1, d2, protocol, model, depth), dataset)
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
                row[column] = cell(runs, (d1, d2, "joint", "ddlstm", depth), dataset)
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
                found = values(runs, key, dataset)
                if found:
                    rows.append({"method": label, "pair": f"{d1}/{d2}", "dataset": dataset,
                                 **{metric.replace("_mstcn", " (MS-TCN)"): cell(runs, key, dataset, metric)
                                    for metric in METRICS},
                                 "splits": len({split for split, _ in found})})
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
                   "accuracy": cell(runs, (d1, d2, protocol, model, depth), dataset)}
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
                row[column] = cell(runs, (d1, d2, *by_position[position], depth), dataset, splits=(split,))
                if paper and (d1, d2) in PAPER_TABLE5:
                    row[column + " (paper)"] = PAPER_TABLE5[(d1, d2)][label][position]
        rows.append(row)
    return rows


def differences_table(runs: dict, pairs, depth: int) -> list[dict]:
    """Per pair (or group) and dataset: the joint models' mean paired differences over (split, seed),
    with their 95% t intervals (`uncertainty.paired_difference`), in accuracy points."""
    rows = []
    for pair in pairs:
        for dataset in pair:
            for label, first, second in DIFFERENCES:
                found = paired_difference(values(runs, (*pair, "joint", first, depth), dataset),
                                          values(runs, (*pair, "joint", second, depth), dataset))
                if found is not None:
                    rows.append({"runs": "/".join(pair), "dataset": dataset, "difference": label,
                                 "pairs of runs (split x seed)": found.n, "mean": found.mean,
                                 "95% CI low": found.low, "95% CI high": found.high})
    return rows


def groups_table(runs: dict, none: dict, groups, pairs, depth: int, splits) -> list[dict]:
    """Per group and dataset: the frame classifier alone, the dataset's best joint result among the
    pairs it is in, and the group's joint LSTM / BNLSTM / DDLSTM; all over the groups' splits."""
    rows = []
    for group in groups:
        for dataset in group:
            best, best_run = None, "-"
            for pair in pairs:
                if dataset not in pair:
                    continue
                for label, model in JOINT_MODELS:
                    found = cell(runs, (*pair, "joint", model, depth), dataset, splits=splits)
                    if found is not None and (best is None or found.mean > best.mean):
                        partner = pair[1 - pair.index(dataset)]
                        best, best_run = found, f"joint {label} with {partner}"
            row = {"group": "/".join(group), "dataset": dataset, "Single, None": none_cell(none, dataset, splits),
                   "best pair": best, "best pair run": best_run}
            for label, model in JOINT_MODELS:
                row[f"group, {label}"] = cell(runs, (*group, "joint", model, depth), dataset, splits=splits)
            rows.append(row)
    return rows


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Spread):
        return str(value)
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _csv_rows(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows for the CSV: a Spread is its mean, and its standard deviation in a column "<column> sd" beside
    it wherever the column has one (two or more seeds); numbers stay numbers."""
    columns = list(rows[0])
    spread = {c for c in columns if any(isinstance(r.get(c), Spread) and r[c].sd is not None for r in rows)}
    fields = [name for c in columns for name in ((c, f"{c} sd") if c in spread else (c,))]
    out = []
    for row in rows:
        flat = {}
        for c in columns:
            value = row.get(c)
            flat[c] = value.mean if isinstance(value, Spread) else ("" if value is None else value)
            if c in spread:
                flat[f"{c} sd"] = value.sd if isinstance(value, Spread) and value.sd is not None else ""
        out.append(flat)
    return out, fields


def write_table(rows: list[dict], stem: Path, caption: str) -> list[Path]:
    """`stem`.csv, .md and .tex of the same rows, each written whole or not at all."""
    columns = list(rows[0])
    csv_rows, fields = _csv_rows(rows)
    write_csv(csv_rows, stem.with_suffix(".csv"), fieldnames=fields)
    lines = [f"{caption}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row.get(c)) for c in columns) + " |" for row in rows]
    write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")

    def tex(text):
        return str(text).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("±", r"$\pm$")

    tex_lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{" + "l" + "r" * (len(columns) - 1) + "}",
                 r"\hline", " & ".join(tex(c) for c in columns) + r" \\", r"\hline"]
    tex_lines += [" & ".join(tex(_format(row.get(c))) for c in columns) + r" \\" for row in rows]
    tex_lines += [r"\hline", r"\end{tabular}", rf"\caption{{{tex(caption)}}}", r"\end{table}"]
    write_text(stem.with_suffix(".tex"), "\n".join(tex_lines) + "\n")
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def lookahead_of_features(feature_datasets) -> str:
    """What a caption says of datasets read from precomputed features: not strictly online."""
    names = ", ".join(sorted(feature_datasets))
    return (f"{names} read from precomputed features: MS-TCN's I3D features of a frame come from a 21-frame window "
            "centred on it (10 frames ahead: 0.67 s at 15 fps, 0.33 s at 30 fps), so results on them are not "
            "strictly online")


def recurrent_input(recurrent_inputs: str, feature_datasets) -> str:
    """What a caption says the recurrent models read."""
    if recurrent_inputs == "features" and feature_datasets:
        return (f"recurrent input: the standardised precomputed features of {', '.join(sorted(feature_datasets))}, "
                "the frame classifier's logits of any other dataset, with the boundary predictions")
    return "recurrent input: the frame classifier's logits with the boundary predictions (the paper's)"


def write_tables(metrics_paths, none_paths, pairs, depths, table1_depth: int, output_dir, paper: bool = False,
                 table3=(), table4=(), table5_pairs=(), table5_split: int = 1, feature_datasets=(), readings: str = "",
                 groups=(), group_splits=None, comparison: bool = False, recurrent_inputs: str = "logits"):
    """Every table; Tables 3 and 4 take (dataset, (d1, d2)) entries, Table 5 (d1, d2) pairs, `groups`
    tuples of three or more datasets (over `group_splits`); `comparison` adds the table of paired
    differences. `readings` (how the runs read the paper where it is terse) ends every accuracy
    table's caption."""
    runs, none = read_runs(metrics_paths), read_none(none_paths)
    output_dir = Path(output_dir)
    source = "the paper's numbers beside ours where its datasets are" if paper else "this configuration's datasets"
    source += "; " + recurrent_input(recurrent_inputs, feature_datasets)
    if feature_datasets:
        source += "; " + lookahead_of_features(feature_datasets)
    splits = sorted({len(v) for v in none.values()})
    samples = [sample for r in runs.values() for d in r.values() for sample in d.get("accuracy", {})]
    seeds = len({seed for _, seed in samples}) or 1
    averaged = f"mean over {'/'.join(map(str, splits))} splits" + (
        f" and {seeds} seeds, ± the standard deviation over seeds of the split mean" if seeds > 1 else "")
    note = f"frame accuracy %, {averaged}, {source}" + (f"; {readings}" if readings else "")
    write_table(table1(runs, none, pairs, table1_depth, paper), output_dir / "table1",
                f"Table 1: online frame accuracy, {table1_depth}-layer models ({note})")
    write_table(table2(runs, pairs, depths, paper), output_dir / "table2",
                f"Table 2: Joint DDLSTM by number of layers ({note})")
    write_table(segmentation_table(runs, pairs, table1_depth), output_dir / "segmentation",
                f"Segmentation metrics of Table 1's runs (accuracy, edit, F1@10/25/50; MS-TCN's definitions): "
                f"edit and F1 leave out the dataset's background class; the (MS-TCN) columns follow MS-TCN's "
                f"eval.py, which leaves out only a class named 'background' (so Breakfast's SIL counts), for "
                f"comparison with MS-TCN-family results ({averaged}, {source})")
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
                    f"(frame accuracy %{', mean over seeds ± their standard deviation' if seeds > 1 else ''}, {source}"
                    + (f"; {readings})" if readings else ")"))
    if comparison:
        rows = differences_table(runs, [*pairs, *groups], table1_depth)
        if rows:
            write_table(rows, output_dir / "comparison",
                        "Comparison of the joint models: mean paired difference in frame accuracy points over the runs "
                        "of each (split, seed), with Student's t 95% confidence interval of that mean (docs/method.md "
                        f"§10), {table1_depth}-layer models ({source}" + (f"; {readings})" if readings else ")"))
    if groups:
        chosen = group_splits or sorted({split for split, _ in samples})
        write_table(groups_table(runs, none, groups, pairs, table1_depth, set(chosen)), output_dir / "groups",
                    f"Groups: joint models over three or more datasets at once (one DDBN domain each) against the "
                    f"frame classifier alone and each dataset's best joint result in a pair, on splits "
                    f"{', '.join(map(str, chosen))} ({note})")
