"""The Snakemake workflow: lint-clean, validated config, and a tiny configuration run for real
(.test/config/config.yaml): every rule, a second run that does nothing, and a deleted HDF5 file
that reruns only what depends on it."""

import csv
import re
import shutil
import sys

import pytest
from snakemake_runs import (
    ROOT,
    SNAKEMAKE,
    TINY_CONFIG,
    copy_workflow,
    placeholder_data,
    planned,
    run_bounded,
    snakemake,
)

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')")


# The root's Snakefile (the owner's layout) and workflow/Snakefile (the workflow catalog's) are one workflow.
ENTRY_POINTS = ("Snakefile", "workflow/Snakefile")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_workflow_lints_clean(entry):
    result = snakemake("-s", entry, "--lint")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_dry_run_plans_every_stage(entry):
    result = snakemake("-s", entry, "-n", "--cores", "1", "--forceall")
    assert result.returncode == 0, result.stdout
    jobs = planned(result)
    assert jobs["synthetic_data"] == 1 and jobs["frames"] == 3
    for rule in ("finetune", "extract", "none_row", "boundary"):
        assert jobs[rule] == 12, rule  # 3 datasets x 4 splits
    assert jobs["train"] == 3 * 4 * 7  # pairs x splits x (5 Table-1 runs + depths 1 and 2)
    assert jobs["train_group"] == 3  # the group of the three datasets, one split: LSTM, BNLSTM, DDLSTM
    assert jobs["tables"] == 1 and jobs["figures"] == 1


def test_a_config_with_only_the_old_keys_plans_todays_jobs():
    # no seeds, groups or recurrent inputs: the rules, run folders and tables of the workflow before them
    result = snakemake("-n", "-p", "--cores", "1", "--forceall", "--configfile", TINY_CONFIG)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = planned(result)
    assert set(jobs) == {"synthetic_data", "frames", "finetune", "extract", "none_row", "boundary", "train",
                         "alpha_init", "tables", "figures", "default"}, jobs
    runs = set(re.findall(r"results/recurrent/\S+?/split\d+/(\S+?)/metrics\.csv", result.stdout))
    assert runs == {"joint-lstm-L1", "joint-bnlstm-L1", "d1d2-lstm-L1", "d2d1-lstm-L1", "joint-ddlstm-L1"}, runs
    assert "results/tables/comparison" not in result.stdout and "results/groups" not in result.stdout
    commands = [line for line in result.stdout.splitlines() if "python -m pipeline train" in line]
    assert commands and all("--seed 0" in line and "--inputs-from logits" in line and "--feature-sources" not in line
                            for line in commands)


def test_the_catalog_finds_its_files():
    import yaml

    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert catalog["software-stack-deployment"]["conda"] is True and catalog["report"] is True
    assert catalog["mandatory-flags"]["desc"] and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "Snakefile").read_text().count("include:") == 1


def plan_with_placeholder_data(folder, configfile):
    """Jobs per rule of a dry run of `configfile` once placeholders stand in for its data."""
    placeholder_data(folder, configfile)
    result = snakemake("-n", "--cores", "1", "--configfile", configfile, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    return planned(result)

def test_the_paper_config_plans_once_its_data_is_in_place(tmp_path):
    folder = copy_workflow(tmp_path)
    missing = snakemake("-n", "--cores", "1", "--configfile", "config/paper.yaml", cwd=folder)
    assert missing.returncode != 0 and "Missing input files" in missing.stdout
    assert "resources/breakfast/segmentation/Breakfast_coarse" in missing.stdout or "resources/50salads" in missing.stdout
    jobs = plan_with_placeholder_data(folder, "config/paper.yaml")
    assert "synthetic_data" not in jobs and jobs["frames"] == 3
    assert jobs["finetune"] == 12  # 3 datasets x 4 splits, from resources/weights/bninception_hmdb51.pth
    # pairs x splits x (Table-1 runs + depths 1, 2, 4, 5, 10) + Table 3's look-ahead runs (breakfast+50salads)
    assert jobs["train"] == 3 * 4 * (5 + 5) + 4


def test_the_synthesised_features_config_plans_tables_1_to_5(tmp_path):
    jobs = plan_with_placeholder_data(copy_workflow(tmp_path), "config/synfeatures.yaml")
    assert jobs["check_features"] == 2 and jobs["linear"] == 8 and "frames" not in jobs
    assert jobs["train"] == 4 * (5 + 2) + 4  # Table 1 and depths 1, 2 on one pair, the look-ahead runs of Tables 3-4


def test_the_mstcn_config_plans_without_any_video(tmp_path):
    jobs = plan_with_placeholder_data(copy_workflow(tmp_path), "config/mstcn.yaml")
    assert not {"synthetic_data", "frames", "finetune", "extract"} & set(jobs)
    assert jobs["check_features"] == 3 and jobs["linear"] == 12
    # Table 1-2 runs and the look-ahead runs of breakfast_i3d+50salads_i3d, Table 3's and 4's pair; the rest
    # of Tables 3-5 are Table 1's runs
    assert jobs["train"] == 3 * 4 * (5 + 5) + 4


@pytest.mark.parametrize("edit, message", [
    (("recurrent:", "recurent:"), r"'recurent' was unexpected"),
    (("  iterations: 5\n", "  iterations: -5\n"), r"-5 is less than the minimum of 1.*\['recurrent'\]\['iterations'\]"),
    (("  - [synbreakfast, syncooking]", "  - [synbreakfast, nosuch]"), r"config: pairs: 'nosuch' is not a key"),
])
def test_malformed_config_fails_before_any_job(tmp_path, edit, message):
    text = (ROOT / TINY_CONFIG).read_text()
    assert edit[0] in text
    (tmp_path / "bad.yaml").write_text(text.replace(edit[0], edit[1], 1))
    result = snakemake("--cores", "1", "--configfile", str(tmp_path / "bad.yaml"), cwd=copy_workflow(tmp_path))
    assert result.returncode != 0
    assert re.search(message, result.stdout, re.DOTALL), result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources/synthetic").exists()


def test_tiny_config_runs_every_rule(tiny_run):
    for name in ("table1", "table2", "segmentation"):
        for ext in ("csv", "md", "tex"):
            assert (tiny_run / f"results/tables/{name}.{ext}").stat().st_size > 0
    for number in (5, 6, 7):
        assert (tiny_run / f"results/figures/fig{number}.png").read_bytes()[:4] == b"\x89PNG"
    with open(tiny_run / "results/tables/table1.csv", newline="") as handle:
        table1 = list(csv.reader(handle))
    assert table1[0] == ["method", "synbreakfast/syncooking D1", "synbreakfast/syncooking D2"]
    assert [row[0] for row in table1[1:]] == ["Single, None", "Joint, LSTM", "Joint, BNLSTM", "D1,D2, LSTM",
                                              "D2,D1, LSTM", "Joint, DDLSTM"]
    assert all(0 <= float(value) <= 100 for row in table1[1:] for value in row[1:])
    assert any((tiny_run / "results/logs/recurrent").rglob("*.log"))


def test_second_run_does_nothing(tiny_run):
    result = snakemake("-n", "--cores", "2", "--configfile", TINY_CONFIG, cwd=tiny_run)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout


def test_deleting_one_hdf5_reruns_only_what_depends_on_it(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run", symlinks=True)  # copy2 keeps the times Snakemake compares
    (run / "results/boundary/syncooking/split1/inputs.h5").unlink()
    result = snakemake("-n", "--cores", "2", "--configfile", TINY_CONFIG, cwd=run)
    jobs = planned(result)
    assert jobs.get("boundary") == 1
    assert not {"synthetic_data", "frames", "finetune", "extract", "none_row"} & set(jobs), jobs
    assert jobs.get("train") == 5 and jobs.get("alpha_init") == 1, jobs  # every run of the pair
    assert jobs.get("tables") == 1 and jobs.get("figures") == 1


def test_every_file_a_later_rule_reads_is_an_output(tiny_run, tmp_path):
    # Fig. 7 reads the Table-1 DDLSTM run's alphas.csv: remade, the figures need it, and Snakemake knows
    # which job writes it (were it read behind Snakemake's back, the figures job would fail at run time)
    run = shutil.copytree(tiny_run, tmp_path / "run", symlinks=True)
    (run / "results/recurrent/synbreakfast+syncooking/split1/joint-ddlstm-L1/alphas.csv").unlink()
    jobs = planned(snakemake("-n", "--cores", "2", "--configfile", TINY_CONFIG, "--forcerun", "figures", cwd=run))
    assert jobs.get("train") == 1 and jobs.get("figures") == 1, jobs
    header = (tiny_run / "results/recurrent/synbreakfast+syncooking/split1/joint-lstm-L1/alphas.csv").read_text()
    assert header == "iteration,layer\n"  # a run without alphas writes the file all the same


def test_an_exported_run_predicts_its_test_videos_from_the_videos_and_streams_them(tiny_run, tmp_path):
    # the workflow's bundle target, then `ddlstm predict` on a test video's recording and on its frame store:
    # the run's own predictions, frame for frame; `ddlstm stream` on the recording gives predict's labels
    import numpy as np

    from pipeline.features.logits import Logits

    target = "results/models/synbreakfast+syncooking/split1/joint-ddlstm-L1.ddlstm"
    result = snakemake(target, "--cores", "2", "--configfile", TINY_CONFIG, cwd=tiny_run)
    assert result.returncode == 0, result.stdout[-3000:]
    saved = np.load(tiny_run / "results/recurrent/synbreakfast+syncooking/split1/joint-ddlstm-L1/predictions.npz")
    with Logits(tiny_run / "results/features/syncooking/split1/logits.h5") as logits:
        class_names = logits.class_names
    command = [sys.executable, "-m", "pipeline"]
    for video in [key.split("/")[1] for key in saved.files if key.startswith("syncooking/")]:
        expected = [class_names[k] if k >= 0 else None for k in saved[f"syncooking/{video}"]]
        recording = next((tiny_run / "resources/synthetic/syncooking/videos").glob(f"{video}.*"))
        for name, source in (("video", recording), ("store", tiny_run / f"results/frames/syncooking/{video}.npy")):
            out = tmp_path / name
            predicted = run_bounded([*command, "predict", "--model", target, "--dataset", "syncooking", str(source),
                                     "--output", str(out), "--device", "cpu"], 600, cwd=tiny_run)
            assert predicted.returncode == 0, predicted.stdout[-3000:]
            labels = (out / f"{video}.txt").read_text().splitlines()
            assert len(labels) == len(expected), (name, video)
            # another dataset's label (-1 in predictions.npz) is written as <dataset>:<class>
            assert [label if ":" not in label else None for label in labels] == expected, (name, video)
    streamed = run_bounded([*command, "stream", "--model", target, "--dataset", "syncooking", str(recording),
                            "--device", "cpu"], 600, cwd=tiny_run)
    assert streamed.returncode == 0, streamed.stdout[-3000:]
    lines = [line.split("\t") for line in streamed.stdout.splitlines() if line.count("\t") == 2]
    assert [label for _, label, _ in lines] == (tmp_path / "video" / f"{video}.txt").read_text().splitlines()
    assert "frames/s" in streamed.stdout


def test_the_beyond_configs_differ_only_in_the_recurrent_input(tmp_path):
    import yaml

    logits, features = (yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())
                        for name in ("beyond", "beyond-features"))
    assert (logits["recurrent"].pop("inputs"), features["recurrent"].pop("inputs")) == ("logits", "features")
    logits["recurrent"].pop("input_projection")
    assert features["recurrent"].pop("input_projection") > 0
    assert logits == features
    jobs = plan_with_placeholder_data(copy_workflow(tmp_path), "config/beyond.yaml")
    assert jobs["train"] == 5 * 4 and jobs["train_seed"] == 5 * 4 * 2  # Table 1's runs, 4 splits, seeds 1 and 2
    assert jobs["train_group"] == 3 * 4 and jobs["train_group_seed"] == 3 * 4 * 2
