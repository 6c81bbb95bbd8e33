"""Where a workflow run's time went: its jobs' own records (results/benchmarks/**/*.tsv), summed per rule.

    python benchmarks/jobs.py                      # the run in ./results
    python benchmarks/jobs.py ../exp/results       # another working directory's run

Snakemake writes one record per job (wall seconds `s` and `cpu_time`, the process tree's CPU seconds);
the table gives, per rule, the jobs, their wall time summed and on average, and their CPU time summed,
so that the rules that cost the most stand out. The wall times of jobs that ran side by side add up to
more than the run's own wall time. A job started warm (DDLSTM_WARM_START, the workflow's default on its
own machine) does its work in a process forked by the warm-start server, outside the job's process
tree: its CPU seconds are the client's alone, and only the wall times compare with a cold run's.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path


def summarise(results: Path) -> list[dict]:
    """One row per rule: jobs, wall seconds (sum, mean) and CPU seconds, the largest wall sum first."""
    rules: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    folder = results / "benchmarks"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no job records (run the workflow first)")
    for record in sorted(folder.rglob("*.tsv")):
        rule = record.relative_to(folder).parts[0].removesuffix(".tsv")
        with open(record, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        totals = rules[rule]
        totals[0] += 1
        totals[1] += float(row["s"])
        totals[2] += float(row["cpu_time"]) if row.get("cpu_time") not in (None, "", "NA") else 0.0
    rows = [{"rule": rule, "jobs": int(n), "wall s": wall, "mean wall s": wall / n, "cpu s": cpu}
            for rule, (n, wall, cpu) in rules.items()]
    return sorted(rows, key=lambda row: -row["wall s"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", default="results", type=Path, help="a run's results folder")
    args = parser.parse_args(argv)
    try:
        rows = summarise(args.results)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("| rule | jobs | wall s (sum) | wall s (mean) | CPU s (sum) |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['rule']} | {row['jobs']} | {row['wall s']:.1f} | {row['mean wall s']:.1f} | {row['cpu s']:.1f} |")
    total = [sum(row[key] for row in rows) for key in ("jobs", "wall s", "cpu s")]
    print(f"| all | {total[0]} | {total[1]:.1f} | | {total[2]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
