"""The workflow on a real SLURM cluster: tests/slurm/cluster.sh starts a one-node cluster from Debian's
packages, the tiny configuration runs through `sbatch` with the SLURM profiles, SLURM's own records show
every job (and a GPU for the rules that ask for one), and the results equal a local run's.

Skipped where SLURM is not installed or the tests do not run as root, unless DDLSTM_REQUIRE_SLURM=1 (set
by .ci/run), which turns those reasons into failures."""

import collections
import importlib.util
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from snakemake_runs import (
    ROOT,
    SNAKEMAKE,
    TINY_CONFIG,
    differences,
    initialise,
    planned,
    run_bounded,
    snakemake,
)

CLUSTER_SCRIPT = ROOT / "tests/slurm/cluster.sh"
PROFILES = ("--profile", "workflow/profiles/slurm", "--profile", "workflow/profiles/slurm-test")
GPU_RULES = {"finetune", "extract", "boundary", "train", "alpha_init"}
# The CPUs each job must get: its rule's threads (finetune's from the test profile's set-threads).
THREADS = {"synthetic_data": 1, "frames": 2, "finetune": 1, "extract": 1, "none_row": 1, "boundary": 1,
           "train": 1, "alpha_init": 1, "tables": 1, "figures": 1, "check_features": 1, "linear": 2}


def _why_not_runnable() -> str | None:
    if SNAKEMAKE is None:
        return "snakemake is not installed (pip install '.[workflow]')"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "the SLURM executor plugin is not installed (pip install '.[workflow]')"
    absent = [name for name in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue")
              if shutil.which(name) is None]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} missing): run `sudo tests/slurm/cluster.sh install`"
    if os.geteuid() != 0:
        return "the test cluster's daemons need root"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster: (its folder, an environment whose SLURM_CONF points at it). Torn down
    after the module whatever happened, the start included."""
    reason = _why_not_runnable()
    if reason is not None:
        if os.environ.get("DDLSTM_REQUIRE_SLURM") == "1":
            pytest.fail(f"DDLSTM_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    try:
        started = run_bounded([str(CLUSTER_SCRIPT), "up", str(folder)], timeout=120)
        assert started.returncode == 0, started.stdout
        yield folder, env
    finally:
        stopped = run_bounded([str(CLUSTER_SCRIPT), "down", str(folder)], timeout=120)
        assert stopped.returncode == 0, stopped.stdout


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny configuration run with `--executor slurm` through the real and the test profile, in a working
    directory `ddlstm init` wrote (its profiles are the ones used): (the folder, Snakemake's output)."""
    _, env = cluster
    folder = initialise(tmp_path_factory.mktemp("slurm") / "experiment", "--config", str(ROOT / TINY_CONFIG))
    result = snakemake(*PROFILES, cwd=folder, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    return folder, result


def _rule_of(comment: str, rules) -> str:
    """The rule of a job from the comment the SLURM plugin gives it: rule_<name>[_wildcards_<values>]."""
    for rule in rules:
        if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"):
            return rule
    raise AssertionError(f"no rule of {sorted(rules)} matches the SLURM job comment {comment!r}")


def test_every_job_went_through_sbatch(cluster, slurm_run):
    folder, env = cluster
    _, result = slurm_run
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout)[1]
    expected = collections.Counter(planned(result))
    # The target rules (workflow/Snakefile's `all`, the root Snakefile's `default`) only collect files;
    # Snakemake never submits them.
    for target in ("all", "default"):
        expected.pop(target, None)

    # The controller's view: every job of this run, finished, with the rule and what it asked for.
    listing = run_bounded(["squeue", "--noheader", "--states=all", f"--name={run_id}",
                           "--Format=JobID:50,State:50,Comment:300,tres-per-job:100,cpus-per-task:20"],
                          timeout=30, env=env)
    assert listing.returncode == 0, listing.stdout
    jobs = [line.split() for line in listing.stdout.splitlines() if line.strip()]
    assert {state for _, state, *_ in jobs} == {"COMPLETED"}, listing.stdout
    rules = [_rule_of(comment, expected) for _, _, comment, *_ in jobs]
    assert collections.Counter(rules) == expected
    for rule, (_, _, _, requests, cpus) in zip(rules, jobs):
        assert ("gpu" in requests) == (rule in GPU_RULES), (rule, requests)
        assert int(cpus) == THREADS[rule], (rule, cpus)  # the rule's threads, not a profile's other number

    # SLURM's completion log (jobcomp/filetxt), kept beyond the controller's memory of finished jobs.
    records = re.findall(r"JobId=(\d+) .*?Name=(\S+) JobState=(\S+)", (folder / "log/jobs.txt").read_text())
    assert sorted((job_id, state) for job_id, name, state in records if name == run_id) == \
        sorted((job_id, "COMPLETED") for job_id, *_ in jobs)


def test_results_equal_a_local_run(slurm_run, tiny_run):
    folder, _ = slurm_run
    assert differences(tiny_run, folder) == []


def test_a_command_past_its_time_is_killed_with_its_children(tmp_path):
    # What stops a hung Snakemake run (and the jobs it started) before the cluster is torn down.
    pid_file = tmp_path / "child.pid"
    with pytest.raises(TimeoutError, match="was killed"):
        run_bounded(["bash", "-c", f"sleep 600 > /dev/null 2>&1 & echo $! > {pid_file}; wait"], timeout=2)
    child = Path(f"/proc/{pid_file.read_text().strip()}")
    for _ in range(50):
        if not child.exists() or child.joinpath("stat").read_text().split()[2] == "Z":
            return
        time.sleep(0.1)
    raise AssertionError("the command's background child survived the timeout")
