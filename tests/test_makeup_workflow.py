"""The workflow's comparison of the fixed and the adaptive batch makeup, for real: .test/config/adaptive-share.yaml
(the tiny configuration with two seeds and adaptive_share_comparison: true) in a copy of the tiny run's
folder, so that only the recurrent runs, tables and figures are made."""

import json

import pytest
from snakemake_runs import (
    ROOT,
    SNAKEMAKE,
    TINY_CONFIG,
    copy_workflow,
    planned,
    read_table,
    run_over,
    snakemake,
)

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')")

CONFIG = ".test/config/adaptive-share.yaml"
PAIR = "results/recurrent/synbreakfast+syncooking/split1"


@pytest.fixture(scope="module")
def adaptive_run(tiny_run, tmp_path_factory):
    return run_over(tiny_run, tmp_path_factory.mktemp("adaptive") / "run", CONFIG)


def test_the_comparison_trains_the_joint_runs_once_more_with_the_adaptive_share(adaptive_run):
    folder, plan = adaptive_run
    assert not {"synthetic_data", "frames", "finetune", "extract", "boundary"} & set(plan), plan
    # Table 1's three joint runs of the one pair and split, per seed; the fixed runs of seed 1 beside them
    assert plan["train_adaptive"] == 3 and plan["train_adaptive_seed"] == 3 and plan["train_seed"] == 5, plan
    assert plan["adaptive_share"] == 1
    for model in ("lstm", "bnlstm", "ddlstm"):
        for seed, tag in ((0, ""), (1, "-s1")):
            run = folder / PAIR / f"joint-{model}-L1-adaptive{tag}"
            saved = json.loads((run / "config.json").read_text())
            assert (saved["domain_share"], saved["seed"], saved["share_min"]) == ("adaptive", seed, 0.125)
            shares = read_table(run / "shares.csv")
            assert [int(row["iteration"]) for row in shares] == [1, 2, 3, 4, 5]
            assert all(int(row["windows_1"]) + int(row["windows_2"]) == 8 for row in shares)
            assert all(0.125 <= float(row["share_1"]) <= 0.875 for row in shares)
        fixed = json.loads((folder / PAIR / f"joint-{model}-L1/config.json").read_text())
        assert fixed["domain_share"] == 0.5 and not (folder / PAIR / f"joint-{model}-L1/shares.csv").exists()


def test_the_table_pairs_fixed_and_adaptive_runs_with_intervals(adaptive_run):
    folder, _ = adaptive_run
    for ext in ("csv", "md", "tex"):
        assert (folder / f"results/tables/adaptive_share.{ext}").stat().st_size > 0
    assert (folder / "results/figures/adaptive_share.png").read_bytes()[:4] == b"\x89PNG"
    rows = read_table(folder / "results/tables/adaptive_share.csv")
    assert [(row["dataset"], row["model"]) for row in rows] == [
        (dataset, model) for dataset in ("synbreakfast", "syncooking") for model in ("LSTM", "BNLSTM", "DDLSTM")]
    table1 = {row["method"]: row for row in read_table(folder / "results/tables/table1.csv")}
    for row in rows:
        assert row["pairs of runs (split x seed)"] == "2"  # 1 split x 2 seeds
        assert float(row["95% CI low"]) <= float(row["adaptive - fixed"]) <= float(row["95% CI high"])
        assert row["fixed sd"] != "" and row["adaptive sd"] != ""  # over the two seeds
        position = 1 if row["dataset"] == "synbreakfast" else 2
        assert row["fixed"] == table1[f"Joint, {row['model']}"][f"synbreakfast/syncooking D{position}"]
        assert 12.5 <= float(row["share %, mean over steps"]) <= 87.5
    by_model = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(float(row["share %, last step"]))
    assert all(sum(shares) == pytest.approx(100) for shares in by_model.values())  # the pair's shares of one batch
    caption = (folder / "results/tables/adaptive_share.md").read_text().splitlines()[0]
    assert "Student's t 95% confidence interval" in caption and "readings:" in caption


def test_without_the_comparison_the_plan_is_todays(tmp_path):
    folder = copy_workflow(tmp_path)
    plan = planned(snakemake("-n", "--cores", "1", "--forceall", "--configfile", TINY_CONFIG, cwd=folder))
    assert not {"train_adaptive", "train_adaptive_seed", "adaptive_share"} & set(plan), plan
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / CONFIG).read_text().replace("  share_min: 0.125\n", "  share_min: 0.125\n  domain_share: adaptive\n"))
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad), cwd=folder)
    assert result.returncode != 0
    assert "config: adaptive_share_comparison compares the adaptive makeup with a fixed one" in result.stdout


def test_the_shipped_comparison_configs_plan_both_arms(tmp_path):
    from tests.test_workflow import plan_with_placeholder_data

    folder = copy_workflow(tmp_path)
    demo = planned(snakemake("-n", "--cores", "1", "--configfile", "config/adaptive-share.yaml", cwd=folder))
    # 3 pairs x 4 splits: Table 1's 5 runs per seed, the 3 joint ones once more adaptive, per seed (2)
    assert (demo["train"], demo["train_seed"], demo["train_adaptive"], demo["train_adaptive_seed"]) == (60, 60, 36, 36)
    assert "train_group" not in demo and "alpha_init" not in demo and demo["adaptive_share"] == 1
    features = plan_with_placeholder_data(folder, "config/adaptive-share-features.yaml")
    assert "frames" not in features and features["linear"] == 8  # one pair, 4 splits, 3 seeds
    assert (features["train"], features["train_seed"], features["train_adaptive"],
            features["train_adaptive_seed"]) == (20, 40, 12, 24)
