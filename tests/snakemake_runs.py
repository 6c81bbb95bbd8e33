"""Helpers for the tests that run the Snakemake workflow: a copy of the workflow in a scratch folder,
Snakemake runs bounded by a timeout that kills the whole process tree, and a dry run's job counts."""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
TINY_CONFIG = ".test/config/config.yaml"


def run_bounded(command: list[str], timeout: float, cwd: Path = ROOT, env: dict | None = None):
    """Run a command, stdout and stderr together; past `timeout` seconds its whole process group is killed
    (SIGKILL: Snakemake and the jobs it started, not only the first process) and TimeoutError raised."""
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise TimeoutError(f"{' '.join(command)} ran past {timeout} s and was killed; its output ended:\n"
                               f"{output[-3000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def snakemake(*args: str, cwd: Path = ROOT, timeout: float = 600, env: dict | None = None):
    return run_bounded([SNAKEMAKE, *args], timeout, cwd=cwd, env=env)


def copy_workflow(folder: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", ".test"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    return folder


def planned(result) -> dict[str, int]:
    """Rule -> job count from a run's (or dry run's) job stats."""
    stats = re.search(r"job\s+count\n[-\s]+\n(.*?)\ntotal", result.stdout, re.DOTALL)
    return {} if stats is None else {rule: int(n) for rule, n in re.findall(r"^(\S+)\s+(\d+)$", stats[1], re.MULTILINE)}
