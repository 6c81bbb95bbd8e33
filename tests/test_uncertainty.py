"""The measure of noise in every comparison: the spread of a cell over seeds, the paired differences of
two methods with Student's t 95% interval (against a hand computation), and the tables that show them."""

import csv
import json
import math

import pytest

from pipeline.reporting.runs import FIRST_SEED, read_runs
from pipeline.reporting.tables import write_tables
from pipeline.reporting.uncertainty import Spread, paired_difference, spread_over_seeds, t_quantile_975


def test_t_quantiles():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(3) == 3.182 and t_quantile_975(11) == 2.201
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)  # tables: 2.021
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)  # tables: 1.980
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_the_interval_of_a_paired_difference_by_hand():
    # DDLSTM and LSTM on 2 splits x 2 seeds; differences 2, 1, 3, 2: mean 2, s = sqrt(2/3), n = 4
    ddlstm = {(1, ""): 30.0, (1, "1"): 31.0, (2, ""): 25.0, (2, "1"): 26.0, (3, ""): 40.0}
    lstm = {(1, ""): 28.0, (1, "1"): 30.0, (2, ""): 22.0, (2, "1"): 24.0}  # split 3 unpaired: left out
    found = paired_difference(ddlstm, lstm)
    half = 3.182 * math.sqrt(2 / 3) / math.sqrt(4)
    assert (found.n, found.mean) == (4, 2.0)
    assert found.low == pytest.approx(2 - half) and found.high == pytest.approx(2 + half)
    assert paired_difference({(1, ""): 1.0}, {(1, ""): 0.5}).low is None  # one pair: no interval
    assert paired_difference({(1, ""): 1.0}, {(2, ""): 0.5}) is None


def test_the_spread_is_over_seeds_of_the_split_mean():
    samples = {(1, ""): 20.0, (2, ""): 30.0, (1, "1"): 24.0, (2, "1"): 32.0}  # seed means 25 and 28
    spread = spread_over_seeds(samples)
    assert spread.mean == 26.5 and spread.sd == pytest.approx(math.sqrt(4.5)) and spread.n == 2
    assert str(spread) == "26.5 ± 2.1"
    assert spread_over_seeds({(1, ""): 20.0, (2, ""): 30.0}) == Spread(25.0, None, 1)
    assert str(Spread(25.0)) == "25.0"


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run(root, pair, split, protocol, model, seed, accuracy):
    tag = f"-s{seed}" if seed else ""
    folder = root / "+".join(pair) / f"split{split}" / f"{protocol}-{model}-L1{tag}"
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", "dataset", "accuracy"])
        for dataset, value in zip(pair, accuracy):
            writer.writerow([10, dataset, value])
    return folder / "metrics.csv"


def test_tables_with_seeds_groups_and_the_comparison(tmp_path):
    pair, group = ("a", "b"), ("a", "b", "c")
    metrics, none = [], []
    for split in (1, 2):
        for seed in (0, 1):
            for protocol, model, base in (("joint", "lstm", 20), ("joint", "bnlstm", 18), ("d1d2", "lstm", 5),
                                          ("d2d1", "lstm", 6), ("joint", "ddlstm", 23)):
                metrics.append(_run(tmp_path / "recurrent", pair, split, protocol, model, seed,
                                    (base + split + seed, base + 10 + split - seed)))
            for model, base in (("lstm", 21), ("bnlstm", 19), ("ddlstm", 24)):
                metrics.append(_run(tmp_path / "groups", group, split, "joint", model, seed,
                                    (base + seed, base + 1, base + 2)))
        for dataset in group:
            path = tmp_path / "features" / dataset / f"split{split}" / "none.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"frame_accuracy": 0.1 * split}))
            none.append(path)
    runs = read_runs(metrics)
    assert runs[("a", "b", "joint", "lstm", 1)]["a"]["accuracy"][(2, FIRST_SEED)] == 22.0
    assert runs[("a", "b", "c", "joint", "ddlstm", 1)]["c"]["accuracy"][(1, "1")] == 26.0
    write_tables(metrics, none, [pair], [1], 1, tmp_path / "tables", groups=[group], group_splits=[1, 2],
                 comparison=True)
    table1 = {row["method"]: row for row in read_csv(tmp_path / "tables/table1.csv")}
    # joint LSTM on a: seed 0 mean (21 + 22) / 2, seed 1 (22 + 23) / 2 -> 22.0 +- 0.707
    assert float(table1["Joint, LSTM"]["a/b D1"]) == pytest.approx(22.0)
    assert float(table1["Joint, LSTM"]["a/b D1 sd"]) == pytest.approx(math.sqrt(0.5))
    assert float(table1["Single, None"]["a/b D1"]) == pytest.approx(15.0) and table1["Single, None"]["a/b D1 sd"] == ""
    assert "| Joint, LSTM | 22.0 ± 0.7 |" in (tmp_path / "tables/table1.md").read_text()
    assert r"22.0 $\pm$ 0.7" in (tmp_path / "tables/table1.tex").read_text()
    comparison = {(row["dataset"], row["difference"]): row
                  for row in read_csv(tmp_path / "tables/comparison.csv") if row["runs"] == "a/b"}
    row = comparison[("a", "DDLSTM - LSTM")]  # 3 points in every (split, seed): no spread, a zero-width interval
    assert (int(row["pairs of runs (split x seed)"]), float(row["mean"])) == (4, 3.0)
    assert float(row["95% CI low"]) == float(row["95% CI high"]) == 3.0
    groups = {row["dataset"]: row for row in read_csv(tmp_path / "tables/groups.csv")}
    assert groups["a"]["best pair run"] == "joint DDLSTM with b"
    assert float(groups["a"]["best pair"]) == pytest.approx(23 + 1.5 + 0.5)
    assert float(groups["c"]["group, DDLSTM"]) == pytest.approx(26.0) and groups["c"]["best pair"] == ""
    assert float(groups["a"]["group, DDLSTM sd"]) == pytest.approx(math.sqrt(0.5))
    assert "2 seeds" in (tmp_path / "tables/table1.md").read_text().splitlines()[0]
