"""The command line: every step's failure is one line naming the file and what is wrong, without a
traceback unless asked for (`--debug` or DDLSTM_DEBUG=1), and a non-zero exit status."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import STEPS, usage

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, last
    return last


def test_a_missing_input_is_one_line_naming_it(tmp_path):
    result = run("train", "--inputs", tmp_path / "a.h5", tmp_path / "b.h5", "--output-dir", tmp_path / "out",
                 "--device", "cpu")
    assert_one_line_error(result, f"logits file {tmp_path / 'a.h5'} does not exist")
    with_traceback = run("train", "--inputs", tmp_path / "a.h5", tmp_path / "b.h5", "--output-dir", tmp_path / "out",
                         "--debug")
    assert with_traceback.returncode != 0 and "Traceback" in with_traceback.stderr
    assert "Traceback" in run("train", "--inputs", tmp_path / "a.h5", tmp_path / "b.h5", "--output-dir",
                              tmp_path / "out", env={"DDLSTM_DEBUG": "1"}).stderr


def test_a_bad_feature_file_is_one_line_naming_it(tmp_path):
    root = tmp_path / "toy"
    (root / "groundTruth").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "mapping.txt").write_text("0 SIL\n1 pour\n")
    for person in range(1, 5):
        (root / "groundTruth" / f"P0{person}_tea.txt").write_text("SIL\npour\n" * 10)
        np.save(root / "features" / f"P0{person}_tea.npy", np.ones((3, 20), np.float32))
    np.savez(root / "features" / "P02_tea.npz", np.ones((3, 20)))
    (root / "features" / "P02_tea.npz").replace(root / "features" / "P02_tea.npy")
    spec = f'{{"name": "toy", "format": "mstcn", "annotations": "{root}", "fps": 15}}'
    result = run("check-features", "--dataset", spec, "--report", tmp_path / "report.csv")
    assert_one_line_error(result, "P02_tea.npy: an .npz archive")
    assert not (tmp_path / "report.csv").exists()


def test_a_damaged_checkpoint_is_one_line_naming_it(tmp_path):
    from tests.test_training import fake_logits

    inputs = [fake_logits(tmp_path / "a.h5", "alpha", 4, 1), fake_logits(tmp_path / "b.h5", "beta", 3, 2)]
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00" * 64)
    result = run("train", "--inputs", *inputs, "--output-dir", out, "--device", "cpu", "--iterations", "5",
                 "--hidden", "8", "--history", "6", "--batch-size", "8", "--layers", "1")
    assert_one_line_error(result, f"{out / 'checkpoint.pt'}: the checkpoint is damaged", "to start this run afresh")


def test_bad_options_and_unknown_steps_exit_2_with_usage(tmp_path):
    result = run("train", "--no-such-option")
    assert result.returncode == 2 and "the following arguments are required: --inputs" in result.stderr
    result = run("trian")
    assert result.returncode == 2 and "unknown step 'trian'" in result.stderr and "train" in result.stdout


def test_the_step_list_is_aligned_and_says_what_each_writes():
    lines = [line for line in usage().splitlines() if line.startswith("  ")]
    assert len(lines) == len(STEPS)
    columns = {len(line) - len(line[2:].split("  ", 1)[1].lstrip()) for line in lines}
    assert len(columns) == 1, lines  # every summary starts in the same column
    assert "Tables 1-5" in STEPS["tables"][1]


@pytest.mark.parametrize("error, line", [
    (FileNotFoundError(2, "No such file or directory", "/x/y.h5"), "error: /x/y.h5: No such file or directory"),
    (KeyError("subset"), "error: KeyError: 'subset'"),
    (ValueError("a.npy: bad\n  b.npy: worse"), "error: a.npy: bad b.npy: worse"),
])
def test_error_lines(error, line):
    from pipeline.__main__ import error_line

    assert error_line(error) == line
