"""Helpers for the tests that run the Snakemake workflow: a copy of the workflow in a scratch folder or a
working directory written by `ddlstm init`, Snakemake runs bounded by a timeout that kills the whole
process tree, a dry run's job counts, a configuration run over the tiny run or over features synthesised from the real
labels, placeholder data for a config's datasets, and the results two runs
do not share."""

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
TINY_CONFIG = ".test/config/config.yaml"
# The real annotations some tests read (never part of the repository): beside the checkout, or named.
REAL = Path(os.environ.get("DDLSTM_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


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


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_over(tiny_run: Path, folder: Path, config: str) -> tuple[Path, dict[str, int]]:
    """`config` run in a copy of the tiny run's folder (copy2 keeps the times Snakemake compares): the
    copy, and the jobs a dry run planned first."""
    folder = shutil.copytree(tiny_run, folder, symlinks=True)
    plan = planned(snakemake("-n", "--cores", "2", "--configfile", config, cwd=folder))
    result = snakemake("--cores", "2", "--configfile", config, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    return folder, plan


def synthesised_features_run(folder: Path, config: str) -> Path:
    """`config` run in a fresh copy of the workflow over small MS-TCN folders whose features are
    synthesised from the real Breakfast and 50 Salads labels (resources/synfeatures/)."""
    from pipeline.data.synthetic.features import write_folder

    folder = copy_workflow(folder)
    write_folder(REAL / "breakfast", folder / "resources/synfeatures/breakfast", participants=4, videos_per_participant=2)
    write_folder(REAL / "50salads", folder / "resources/synfeatures/50salads", participants=4, videos_per_participant=1)
    result = snakemake("--cores", "2", "--configfile", config, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    return folder


def planned(result) -> dict[str, int]:
    """Rule -> job count from a run's (or dry run's) job stats."""
    stats = re.search(r"job\s+count\n[-\s]+\n(.*?)\ntotal", result.stdout, re.DOTALL)
    return {} if stats is None else {rule: int(n) for rule, n in re.findall(r"^(\S+)\s+(\d+)$", stats[1], re.MULTILINE)}


def initialise(folder: Path, *options: str, python: str = sys.executable, env: dict | None = None) -> Path:
    """`ddlstm init folder [options]` with the given interpreter; the folder."""
    result = run_bounded([python, "-m", "pipeline", "init", str(folder), *options], 120, cwd=folder.parent, env=env)
    assert result.returncode == 0, result.stdout
    return folder


def placeholder_data(folder, config_path):
    """Empty stand-ins for every path a configuration's datasets need, and its weights: enough to plan."""
    import yaml

    from pipeline.dataset_spec import required_paths

    config = yaml.safe_load((Path(folder) / config_path).read_text())
    paths = [path for spec in config["datasets"].values() for path in required_paths(spec)]
    # an MS-TCN folder without videos or features keys reads its features/ subfolder
    paths += [f"{spec['annotations']}/features" for spec in config["datasets"].values()
              if spec["format"] == "mstcn" and not spec.get("videos") and not spec.get("features")]
    for path in (folder / p for p in [*paths, config.get("features", {}).get("weights") or "resources/none.pth"]):
        target = path if path.suffix in (".csv", ".txt", ".pth") else path / "placeholder.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


# Outputs not compared: timings (columns named ...seconds...), the run folder's path, logs and benchmarks,
# and the files whose contents the compared ones already are (checkpoints, figures' pixels).
NOT_COMPARED_FOLDERS = {"logs", "benchmarks"}
NOT_COMPARED_SUFFIXES = {".pt", ".png"}


def differences(first: Path, second: Path, skip=()) -> list[str]:
    """The results/ files that differ between two workflow folders, or exist in only one (`skip`: more
    top-level folders of results/ left out)."""
    def outputs(folder):
        results = folder / "results"
        return {path.relative_to(results) for path in results.rglob("*")
                if path.is_file() and path.relative_to(results).parts[0] not in NOT_COMPARED_FOLDERS | set(skip)}

    ours, theirs = outputs(first), outputs(second)
    found = [f"{name}: only in one run" for name in sorted(map(str, ours ^ theirs))]
    for name in sorted(ours & theirs):
        a, b = first / "results" / name, second / "results" / name
        if name.suffix in NOT_COMPARED_SUFFIXES:
            continue
        if name.suffix == ".npy":
            same = np.array_equal(np.load(a), np.load(b))
        elif name.suffix == ".npz":
            with np.load(a) as x, np.load(b) as y:
                same = x.files == y.files and all(np.array_equal(x[key], y[key]) for key in x.files)
        elif name.suffix == ".h5":
            same = _hdf5_contents(a) == _hdf5_contents(b)
        else:
            same = _text(a, first) == _text(b, second)
        if not same:
            found.append(str(name))
    return found


def _text(path: Path, folder: Path):
    """A text output with the run folder's path replaced; a CSV without its timing columns."""
    text = path.read_text().replace(str(folder), "<run>")
    if path.suffix != ".csv":
        return text
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, column in enumerate(rows[0]) if "seconds" not in column] if rows else []
    return [[row[i] for i in keep] for row in rows]


def _hdf5_contents(path: Path) -> list:
    """Every group's attributes and every dataset's bytes, in name order."""
    contents = []

    def visit(name, item):
        attrs = {key: np.asarray(value).tolist() for key, value in item.attrs.items()}
        contents.append((name, attrs, item[()].tobytes() if isinstance(item, h5py.Dataset) else None))

    with h5py.File(path, "r") as handle:
        visit("/", handle)
        handle.visititems(visit)
    return contents
