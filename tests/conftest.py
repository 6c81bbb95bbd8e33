"""Fixtures shared by test modules: the tiny workflow configuration run once, locally, per session."""

import pytest
from snakemake_runs import SNAKEMAKE, TINY_CONFIG, copy_workflow, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A folder where `snakemake --cores 2` ran the tiny configuration to the end. Tests read it; a test
    that changes files works on a copy."""
    if SNAKEMAKE is None:
        pytest.skip("snakemake is not installed (pip install '.[workflow]')")
    folder = copy_workflow(tmp_path_factory.mktemp("workflow"))
    result = snakemake("--cores", "2", "--configfile", TINY_CONFIG, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    return folder
