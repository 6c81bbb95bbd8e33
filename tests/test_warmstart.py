"""Warm start (pipeline/warmstart.py): a step forked from the server computes what it computes in a
process of its own (same files, same exit status, its streams and working directory), a cancelled
client takes its step with it, and anything unusual runs the step in the client's own process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import warmstart

ROOT = Path(__file__).resolve().parents[1]
# A server of this test module's own: its socket is keyed by the user, Python and package, so tests
# share it with the workflow runs of the suite; a short idle time lets it go soon after.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DDLSTM_WARM_IDLE": "60", "PYTHONPATH": str(ROOT)}


def ddlstm(*argv, warm: bool, cwd: Path, timeout: float = 300, **kwargs):
    env = {**ENV, "DDLSTM_WARM_START": "1" if warm else "0"}
    return subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, **kwargs)


def served() -> bool:
    """Whether a server answers (starting one if none does), waiting for it to come up."""
    probe = [sys.executable, "-c",
             "import sys; from pipeline import warmstart; sys.exit(0 if warmstart.run(['--version']) == 0 else 3)"]
    for _ in range(60):
        if subprocess.run(probe, env={**ENV, "DDLSTM_WARM_START": "1"}, capture_output=True,
                          cwd=ROOT, check=False).returncode == 0:
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def server():
    assert served(), "the warm-start server did not come up within a minute"


def test_a_step_forked_warm_writes_what_it_writes_cold(server, tmp_path):
    options = ("synthetic", "--datasets", "synsalads", "--participants", "4", "--videos-per-participant", "1",
               "--frame-size", "16", "--pace", "0.3")
    (tmp_path / "cold").mkdir()
    (tmp_path / "warm").mkdir()
    cold = ddlstm(*options, "--output", "out", warm=False, cwd=tmp_path / "cold")
    warm = ddlstm(*options, "--output", "out", warm=True, cwd=tmp_path / "warm")  # relative: the client's cwd
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    files = sorted(p.relative_to(tmp_path / "cold") for p in (tmp_path / "cold").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "warm") for p in (tmp_path / "warm").rglob("*")
                                     if p.is_file())
    for name in files:
        assert (tmp_path / "cold" / name).read_bytes() == (tmp_path / "warm" / name).read_bytes(), name


def test_exit_status_and_streams_are_the_steps(server, tmp_path):
    for warm in (False, True):
        bad_option = ddlstm("train", "--no-such-option", warm=warm, cwd=tmp_path)
        assert bad_option.returncode == 2 and "ddlstm train: error:" in bad_option.stderr
        missing = ddlstm("none-row", "--logits", "absent.h5", "--output", "n.json", warm=warm, cwd=tmp_path)
        assert missing.returncode == 1, missing.stderr
        assert missing.stderr.strip().splitlines()[-1].startswith("error: ")
        helped = ddlstm("frames", "--help", warm=warm, cwd=tmp_path)
        assert helped.returncode == 0 and helped.stdout.startswith("usage: ddlstm frames")


def processes_in(folder: Path) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == folder:
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the forked step through /proc")
def test_a_cancelled_client_takes_its_step_with_it(server, tmp_path):
    """Snakemake cancels a job by signalling its process: the step forked for it must stop too."""
    long_step = ("synthetic", "--datasets", "synsalads", "--participants", "60", "--frame-size", "96",
                 "--output", "out")
    client = subprocess.Popen([sys.executable, "-m", "pipeline", *long_step], cwd=tmp_path,
                              env={**ENV, "DDLSTM_WARM_START": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    children = set()
    for _ in range(200):
        children = processes_in(tmp_path.resolve()) - {client.pid}
        if children:
            break
        time.sleep(0.05)
    assert children, "no step was forked for the client"
    client.send_signal(signal.SIGTERM)
    client.wait(timeout=30)
    for _ in range(200):
        if not processes_in(tmp_path.resolve()) & children:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the forked step outlived its cancelled client")


def test_without_a_thread_count_or_switch_it_runs_in_process(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert warmstart.run(["--version"]) is None
    monkeypatch.setenv("DDLSTM_WARM_START", "0")
    assert not warmstart.enabled()


def test_the_workflow_turns_it_on_for_its_own_machine_only():
    text = (ROOT / "workflow/rules/common.smk").read_text()
    assert "workflow.local_exec and not workflow.remote_exec" in text
    assert "DDLSTM_WARM_START=${{DDLSTM_WARM_START:-1}}" in text
