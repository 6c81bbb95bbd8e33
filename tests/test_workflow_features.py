"""The workflow on datasets read from precomputed features, for real: MS-TCN folders built from the
real Breakfast and 50 Salads label sequences (../shared/data/real) with synthesised features, one
dataset from synthetic videos in a pair with them, through Tables 1, 3 and 5."""

import json
import shutil
import time

import numpy as np
import pytest
from snakemake_runs import (
    REAL,
    ROOT,
    SNAKEMAKE,
    copy_workflow,
    planned,
    read_table,
    snakemake,
    synthesised_features_run,
)

# these read the real annotations, so they live with the tests, not in the self-contained .test/
CONFIG = str(ROOT / "tests/configs/features.yaml")
pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')"),
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotations not found at {REAL} (set DDLSTM_REAL_DATA)"),
]


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    return synthesised_features_run(tmp_path_factory.mktemp("features_workflow"), CONFIG)




def test_feature_datasets_need_no_video(features_run):
    assert not (features_run / "results/frames/breakfast").exists()
    assert not (features_run / "results/frames/50salads").exists()
    assert (features_run / "results/frames/synbreakfast/report.csv").is_file()  # the video dataset beside them
    report = read_table(features_run / "results/precomputed/breakfast/report.csv")
    assert len(report) == 8 and {row["layout"] for row in report} == {"DxT"} and {row["dim"] for row in report} == {"64"}


def test_linear_classifier_is_well_above_chance(features_run):
    for dataset, classes in (("breakfast", 48), ("50salads", 18)):  # 50 Salads: 17 + background (relabelled)
        metrics = json.loads((features_run / f"results/features/{dataset}/split1/linear/metrics.json").read_text())
        assert metrics["test_accuracy"] > 4 / classes, (dataset, metrics)


def test_tables_1_3_and_5_are_written_and_joint_lstm_beats_the_frame_classifier(features_run):
    tables = features_run / "results/tables"
    for name in ("table1", "table2", "segmentation", "table3", "table5"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, name
    assert not (tables / "table4.csv").exists()  # not configured
    table1 = {row["method"]: row for row in read_table(tables / "table1.csv")}
    for column in ("breakfast/50salads D1", "breakfast/50salads D2", "synbreakfast/50salads D2"):
        assert float(table1["Joint, LSTM"][column]) > float(table1["Single, None"][column]) + 5, column
    table3 = read_table(tables / "table3.csv")
    assert [row["method"] for row in table3] == ["LSTM, breakfast with 50salads", "DDLSTM, breakfast with 50salads",
                                                 "DDLSTM (look-ahead), breakfast with 50salads"]
    assert {row["input"] for row in table3} == {"features"} and all(row["accuracy"] for row in table3)
    assert table3[0]["accuracy"] == table1["Joint, LSTM"]["breakfast/50salads D1"]  # the same run
    table5 = {row["method"]: row for row in read_table(tables / "table5.csv")}
    assert table5["Pt/ft, LSTM"]["breakfast/50salads D1"] == table1["D2,D1, LSTM"]["breakfast/50salads D1"]
    assert table5["Pt/ft, LSTM"]["breakfast/50salads D2"] == table1["D1,D2, LSTM"]["breakfast/50salads D2"]


def test_second_run_does_nothing(features_run):
    result = snakemake("-n", "--cores", "2", "--configfile", CONFIG, cwd=features_run)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout


def test_a_changed_annotation_or_feature_file_reruns_its_dataset_only(features_run, tmp_path):
    run = shutil.copytree(features_run, tmp_path / "run", symlinks=True)  # copy2 keeps the times Snakemake compares
    labels = next((run / "resources/synfeatures/50salads/groundTruth").glob("*.txt"))
    features = next((run / "resources/synfeatures/breakfast/features").glob("*.npy"))
    lines = labels.read_text().splitlines()
    changes = [(labels, lambda: labels.write_text("\n".join(["cut_tomato", *lines[1:]]) + "\n")),
               (features, lambda: np.save(features, np.load(features) + 1))]
    for path, change in changes:  # a new time alone reruns nothing: Snakemake also compares checksums
        original = path.read_bytes()
        time.sleep(1)
        change()
        jobs = planned(snakemake("-n", "--cores", "2", "--configfile", CONFIG, cwd=run))
        assert jobs.get("check_features") == 1 and jobs.get("linear") == 1, (path, jobs)
        assert not {"synthetic_data", "frames", "finetune", "extract"} & set(jobs), jobs
        path.write_bytes(original)
    # a file the dataset needs, missing before a run: the plan stops, naming it
    (tmp_path / "fresh").mkdir()
    fresh = copy_workflow(tmp_path / "fresh")
    shutil.copytree(run / "resources/synfeatures", fresh / "resources/synfeatures")
    (fresh / "resources/synfeatures/breakfast/mapping.txt").unlink()
    result = snakemake("-n", "--cores", "2", "--configfile", CONFIG, cwd=fresh)
    assert result.returncode != 0 and "Missing input files" in result.stdout
    assert "resources/synfeatures/breakfast/mapping.txt" in result.stdout


BEYOND = str(ROOT / "tests/configs/beyond.yaml")


@pytest.fixture(scope="module")
def beyond_run(features_run, tmp_path_factory):
    """tests/configs/beyond.yaml in a copy of the features run: two seeds, a group of three datasets, the
    features as the recurrent input. The frame classifiers and boundary inputs are the features run's."""
    folder = shutil.copytree(features_run, tmp_path_factory.mktemp("beyond") / "run", symlinks=True)
    plan = planned(snakemake("-n", "--cores", "2", "--configfile", BEYOND, cwd=folder))
    assert not {"synthetic_data", "frames", "finetune", "extract", "linear", "boundary"} & set(plan), plan
    result = snakemake("--cores", "2", "--configfile", BEYOND, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    return folder, plan


def test_seeds_repeat_every_run_and_the_comparison_has_intervals(beyond_run):
    folder, plan = beyond_run
    assert plan["train"] == 5 and plan["train_seed"] == 5  # Table 1's five runs of the pair, per seed
    assert plan["train_group"] == 3 and plan["train_group_seed"] == 3
    runs = folder / "results/recurrent/breakfast+50salads/split1"
    for name in ("joint-ddlstm-L1", "joint-ddlstm-L1-s1"):
        assert (runs / name / "predictions.npz").is_file()
    assert json.loads((runs / "joint-ddlstm-L1-s1/config.json").read_text())["seed"] == 1
    table1 = {row["method"]: row for row in read_table(folder / "results/tables/table1.csv")}
    assert table1["Joint, DDLSTM"]["breakfast/50salads D1 sd"] != ""  # the spread over the two seeds
    comparison = read_table(folder / "results/tables/comparison.csv")
    pair_rows = [row for row in comparison if row["runs"] == "breakfast/50salads"]
    assert {row["difference"] for row in pair_rows} == {"DDLSTM - LSTM", "DDLSTM - BNLSTM", "BNLSTM - LSTM"}
    for row in pair_rows:  # 1 split x 2 seeds
        assert row["pairs of runs (split x seed)"] == "2" and float(row["95% CI low"]) <= float(row["mean"])


def test_a_group_trains_one_model_over_three_domains(beyond_run):
    folder, _ = beyond_run
    run = folder / "results/groups/breakfast+50salads+synbreakfast/split1/joint-ddlstm-L1"
    header = (run / "alphas.csv").read_text().splitlines()[0].split(",")
    assert header[2:] == [f"alpha_{k}" for k in range(1, 7)]  # 3 domains: 6 alphas per layer
    metrics = read_table(run / "metrics.csv")
    assert {row["dataset"] for row in metrics} == {"breakfast", "50salads", "synbreakfast"}
    groups = {row["dataset"]: row for row in read_table(folder / "results/tables/groups.csv")}
    assert set(groups) == {"breakfast", "50salads", "synbreakfast"}
    assert all(groups[d]["group, DDLSTM"] for d in groups)
    assert groups["synbreakfast"]["best pair"] == ""  # in no pair of this configuration
    assert (folder / "results/figures/groups_alphas.png").stat().st_size > 0


def test_features_as_the_recurrent_input(beyond_run):
    folder, _ = beyond_run
    config = json.loads((folder / "results/recurrent/breakfast+50salads/split1/joint-lstm-L1/config.json").read_text())
    assert config["inputs"] == "features" and config["input_projection"] == 16
    assert config["datasets"] == ["breakfast split 1 features", "50salads split 1 features"]
    group = json.loads((folder / "results/groups/breakfast+50salads+synbreakfast/split1/joint-lstm-L1/config.json")
                       .read_text())
    assert group["datasets"][2] == "synbreakfast split 1"  # from videos: its logits
    caption = (folder / "results/tables/table1.md").read_text().splitlines()[0]
    assert "recurrent input: the standardised precomputed features of 50salads, breakfast" in caption
    assert "not strictly online" in caption
