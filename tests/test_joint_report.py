"""The report of the joint frame classifier: the alone-against-joint table's cells and paired intervals from
the files the workflow writes, and the alphas figure."""

import csv
import json
import math

import pytest

from pipeline.reporting.joint_classifier import joint_alphas, write_comparison
from pipeline.reporting.uncertainty import t_quantile_975

PAIR = ("dA", "dB")


def write_run(path, accuracies):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["iteration", "dataset", "accuracy"])
        writer.writeheader()
        for dataset, accuracy in accuracies.items():
            writer.writerow({"iteration": 5, "dataset": dataset, "accuracy": 0.0})  # an earlier evaluation
            writer.writerow({"iteration": 10, "dataset": dataset, "accuracy": accuracy})
    return str(path)


def write_none(path, accuracy):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"frame_accuracy": accuracy / 100}))
    return str(path)


def scores(split, seed, model, joint):
    """Made-up accuracies: joint runs 2 points (+ split) above alone, DDLSTM 10 above LSTM, seed 1 one more."""
    base = 40 + 10 * (model == "ddlstm") + seed + split
    return {"dA": base + (2 + split if joint else 0), "dB": base + 5 - (1 if joint else 0)}


@pytest.fixture()
def files(tmp_path):
    found = {"alone": [], "joint": [], "alone_none": [], "joint_none": []}
    for split in (1, 2, 3):
        for seed in (0, 1):
            tag = "" if seed == 0 else f"-s{seed}"
            for model in ("lstm", "ddlstm"):
                for kind, folder in (("alone", "recurrent"), ("joint", "recurrent_joint")):
                    path = tmp_path / folder / "dA+dB" / f"split{split}" / f"joint-{model}-L3{tag}" / "metrics.csv"
                    found[kind].append(write_run(path, scores(split, seed, model, kind == "joint")))
        for dataset in PAIR:
            found["alone_none"].append(write_none(tmp_path / "features" / dataset / f"split{split}/none.json",
                                                  30 + split))
            found["joint_none"].append(write_none(tmp_path / "features_joint/dA+dB" / dataset / f"split{split}/none.json",
                                                  30 + 2 * split))
    return found


def test_the_table_pairs_runs_on_split_and_seed(files, tmp_path):
    write_comparison(files["alone"], files["joint"], files["alone_none"], files["joint_none"], [PAIR], 3,
                     tmp_path / "tables/joint_cnn", readings="readings: test")
    with open(tmp_path / "tables/joint_cnn.csv", newline="") as handle:
        rows = {(row["dataset"], row["method"]): row for row in csv.DictReader(handle)}
    assert list(rows) == [(d, m) for d in PAIR for m in ("None", "Joint LSTM", "Joint DDLSTM")]
    lstm = rows["dA", "Joint LSTM"]
    # alone: 40 + seed + split, mean over splits 42 (seed 0) and 43 (seed 1); joint adds 2 + split
    assert float(lstm["classifier alone"]) == pytest.approx(42.5)
    assert float(lstm["classifier alone sd"]) == pytest.approx(math.sqrt(0.5))
    assert float(lstm["classifier joint"]) == pytest.approx(46.5)
    differences = [3, 3, 4, 4, 5, 5]  # 2 + split over (split, seed)
    half = t_quantile_975(5) * (sum((d - 4) ** 2 for d in differences) / 5) ** 0.5 / math.sqrt(6)
    assert float(lstm["joint - alone"]) == pytest.approx(4.0)
    assert float(lstm["95% CI low"]) == pytest.approx(4 - half) and float(lstm["95% CI high"]) == pytest.approx(4 + half)
    assert lstm["pairs (split x seed)"] == "6"
    assert float(rows["dB", "Joint DDLSTM"]["joint - alone"]) == pytest.approx(-1.0)
    assert float(rows["dB", "Joint DDLSTM"]["95% CI low"]) == pytest.approx(-1.0)  # every difference equal: no width
    none = rows["dA", "None"]
    assert none["pairs (split x seed)"] == "3" and float(none["joint - alone"]) == pytest.approx(2.0)
    assert none["classifier alone sd"] == ""  # no seeds
    markdown = (tmp_path / "tables/joint_cnn.md").read_text()
    assert markdown.startswith("The frame classifier alone against the pair's joint one")
    assert "3 splits and 2 seeds" in markdown and "readings: test" in markdown and "42.5 ± 0.7" in markdown
    assert (tmp_path / "tables/joint_cnn.tex").read_text().startswith(r"\begin{table}")


def test_a_run_missing_on_one_side_leaves_its_sample_out(files, tmp_path):
    alone = [path for path in files["alone"] if "split3/" not in path]
    write_comparison(alone, files["joint"], files["alone_none"], files["joint_none"], [PAIR], 3, tmp_path / "t")
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = {(row["dataset"], row["method"]): row for row in csv.DictReader(handle)}
    assert rows["dA", "Joint LSTM"]["pairs (split x seed)"] == "4"
    assert float(rows["dA", "Joint LSTM"]["classifier joint"]) == pytest.approx(45.5)  # splits 1 and 2 only
    with pytest.raises(ValueError, match="nothing to compare"):
        write_comparison(alone, files["joint"], files["alone_none"], files["joint_none"], [("dA", "dC")], 3,
                         tmp_path / "u")


def test_the_alphas_figure_has_every_layer(tmp_path):
    paths = []
    for split in (1, 2):
        path = tmp_path / f"features_joint/dA+dB/split{split}/finetune/alphas.csv"
        path.parent.mkdir(parents=True)
        rows = ["iteration,layer,alpha_1,alpha_2"]
        rows += [f"{it},{layer},{0.75 + 0.001 * it * layer},{0.75 - 0.0005 * it}" for it in (0, 10, 20)
                 for layer in range(1, 70)]
        path.write_text("\n".join(rows) + "\n")
        paths.append(path)
    output = joint_alphas(paths, tmp_path / "figures/joint_cnn_alphas.png")
    assert output.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="not a joint classifier's alphas.csv"):
        joint_alphas([tmp_path / "alphas.csv"], tmp_path / "x.png")
