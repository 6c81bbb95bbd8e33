"""The Snakemake workflow: lint-clean, and its rule all reaches the demo through a dry run."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')")


def _run(*args):
    return subprocess.run([SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def test_workflow_lints_clean():
    result = _run("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_plans_the_demo():
    result = _run("-n", "--cores", "1", "--forceall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "toy_demo" in result.stdout
