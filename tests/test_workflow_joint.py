"""The workflow with the joint frame classifier (features.joint: true), for real: on the tiny configuration's
synthetic videos (in a copy of its run: the joint CNN and what depends on it), and on MS-TCN folders with
features synthesised from the real Breakfast and 50 Salads label sequences (the joint linear classifier),
through the joint_classifier table and the alphas figure."""

import json
import shutil
from pathlib import Path

import h5py
import pytest
from snakemake_runs import (
    REAL,
    ROOT,
    SNAKEMAKE,
    TINY_CONFIG,
    copy_workflow,
    planned,
    read_table,
    run_over,
    snakemake,
    synthesised_features_run,
)

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')")
VIDEOS = ".test/config/joint.yaml"
FEATURES = str(Path(__file__).resolve().parent / "configs/joint-features.yaml")
PAIR = "synbreakfast+syncooking"


@pytest.fixture(scope="module")
def video_run(tiny_run, tmp_path_factory):
    return run_over(tiny_run, tmp_path_factory.mktemp("joint") / "run", str(ROOT / VIDEOS))


def test_the_switch_adds_the_joint_route_and_reruns_nothing_of_todays(video_run):
    _, plan = video_run
    assert plan == {"finetune_joint": 1, "extract_joint": 2, "none_row_joint": 2, "boundary_joint": 2, "train_joint": 2,
                    "joint_table": 1, "joint_figure": 1, "default": 1}, plan


def test_the_joint_cnn_writes_each_datasets_logits_as_its_own_cnn_does(video_run):
    folder, _ = video_run
    for dataset in PAIR.split("+"):
        alone = folder / f"results/features/{dataset}/split1/logits.h5"
        joint = folder / f"results/features_joint/{PAIR}/{dataset}/split1/logits.h5"
        with h5py.File(alone) as a, h5py.File(joint) as j:
            assert sorted(a) == sorted(j) and a.attrs["class_names"] == j.attrs["class_names"]
            video = min(a)
            assert a[video]["logits"].shape == j[video]["logits"].shape
            assert json.loads(j.attrs["model"])["trained_on"].startswith(f"{PAIR} split 1 (joint, domain ")
        assert (folder / f"results/boundary_joint/{PAIR}/{dataset}/split1/inputs.h5").is_file()
    config = json.loads((folder / f"results/recurrent_joint/{PAIR}/split1/joint-ddlstm-L1/config.json").read_text())
    assert config["model"] == "ddlstm" and config["protocol"] == "joint"


def test_the_table_compares_alone_and_joint_and_the_figure_shows_every_layer(video_run):
    folder, _ = video_run
    rows = read_table(folder / "results/tables/joint_classifier.csv")
    assert [(row["dataset"], row["method"]) for row in rows] == [
        (d, m) for d in PAIR.split("+") for m in ("None", "Joint LSTM", "Joint DDLSTM")]
    none = json.loads((folder / "results/features/syncooking/split1/none.json").read_text())
    assert float(rows[3]["classifier alone"]) == pytest.approx(100 * none["frame_accuracy"])
    joint_none = json.loads((folder / f"results/features_joint/{PAIR}/syncooking/split1/none.json").read_text())
    assert float(rows[3]["classifier joint"]) == pytest.approx(100 * joint_none["frame_accuracy"])
    assert all(row["pairs (split x seed)"] == "1" for row in rows)
    assert {row["layer"] for row in read_table(folder / f"results/features_joint/{PAIR}/split1/finetune/alphas.csv")} \
        == {str(k) for k in range(1, 70)}
    assert (folder / "results/figures/joint_classifier_alphas.png").read_bytes()[:4] == b"\x89PNG"
    assert "Nothing to be done" in snakemake("-n", "--cores", "2", "--configfile", VIDEOS, cwd=folder).stdout


def test_without_the_switch_the_plan_is_todays(video_run):
    folder, _ = video_run
    result = snakemake("-n", "--cores", "2", "--configfile", TINY_CONFIG, cwd=folder)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    if not REAL.is_dir():
        pytest.skip(f"real annotations not found at {REAL} (set DDLSTM_REAL_DATA)")
    return synthesised_features_run(tmp_path_factory.mktemp("joint_features"), FEATURES)


def test_the_features_route_fits_a_joint_linear_classifier_and_compares_it_over_seeds(features_run):
    folder = features_run
    work = folder / "results/features_joint/breakfast+50salads/split1/linear"
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["datasets"] == ["breakfast", "50salads"] and metrics["steps"] == 300
    assert metrics["test_accuracy breakfast"] > 4 / 48 and metrics["test_accuracy 50salads"] > 4 / 18  # above chance
    alphas = read_table(work / "alphas.csv")
    assert {row["layer"] for row in alphas} == {"1"} and all(0.5 <= float(row["alpha_2"]) <= 1 for row in alphas)
    rows = {(row["dataset"], row["method"]): row for row in read_table(folder / "results/tables/joint_classifier.csv")}
    assert len(rows) == 6
    ddlstm = rows["breakfast", "Joint DDLSTM"]
    assert ddlstm["pairs (split x seed)"] == "2" and ddlstm["classifier joint sd"] != ""  # two seeds
    assert float(ddlstm["95% CI low"]) <= float(ddlstm["joint - alone"]) <= float(ddlstm["95% CI high"])
    caption = (folder / "results/tables/joint_classifier.md").read_text().splitlines()[0]
    assert "a dual-domain BN of the features and a linear head per dataset" in caption and "BN-Inception" not in caption
    assert (folder / "results/figures/joint_classifier_alphas.png").stat().st_size > 0
    assert not (folder / "results/features_joint/breakfast+50salads/split1/finetune").exists()


def test_a_pair_across_routes_has_no_joint_classifier(features_run, tmp_path):
    text = (Path(__file__).resolve().parents[1] / "tests/configs/features.yaml").read_text()
    (features_run / "mixed.yaml").write_text(text.replace("  extract_batch_size: 64\n",
                                                          "  extract_batch_size: 64\n  joint: true\n"))
    jobs = planned(snakemake("-n", "--cores", "2", "--configfile", "mixed.yaml", cwd=features_run))
    assert "finetune_joint" not in jobs and "extract_joint" not in jobs  # synbreakfast+50salads: videos and features
    assert jobs.get("train_joint") == 2  # breakfast+50salads's joint LSTM and DDLSTM
    only_mixed = text.replace("  - [breakfast, 50salads]\n", "").replace("  extract_batch_size: 64\n",
                                                                          "  extract_batch_size: 64\n  joint: true\n")
    only_mixed = only_mixed.replace("tables:\n  table3: [{dataset: breakfast, partner: 50salads}]\n"
                                    "  table5: {pairs: [[breakfast, 50salads]], split: 1}\n", "")
    (features_run / "only_mixed.yaml").write_text(only_mixed)
    result = snakemake("-n", "--cores", "2", "--configfile", "only_mixed.yaml", cwd=features_run)
    assert result.returncode != 0
    assert "config: features: joint: true, but no pair has both datasets from videos or both from features" \
        in result.stdout


def test_the_measured_configs_plan_the_comparison(features_run, tmp_path):
    # config/joint-cnn.yaml: the demo's first pair, 4 splits, 2 seeds; config/joint-features.yaml: real label
    # sequences with synthesised features, 4 splits, 3 seeds (planned in the features run's folder, whose
    # synthesised folders stand in for the larger ones the config is measured on)
    videos = planned(snakemake("-n", "--cores", "2", "--configfile", "config/joint-cnn.yaml",
                               cwd=copy_workflow(tmp_path)))
    assert videos["finetune_joint"] == 4 and videos["finetune"] == 8 and videos["extract_joint"] == 8
    assert videos["train_joint"] + videos["train_joint_seed"] == 2 * 4 * 2
    assert videos["train"] + videos["train_seed"] == 5 * 4 * 2 and "train_group" not in videos
    shutil.copy(Path(__file__).resolve().parents[1] / "config/joint-features.yaml", features_run / "measured.yaml")
    features = planned(snakemake("-n", "--cores", "2", "--configfile", "measured.yaml", cwd=features_run))
    assert features["linear_joint"] == 4 and "finetune_joint" not in features
    assert features["train_joint"] + features["train_joint_seed"] == 2 * 4 * 3
