"""The workflow deployed the way Snakemake users deploy workflows: `ddlstm init` writes one working directory
per experiment whose workflow is the installed package's. From a wheel in an environment without the
checkout, the tiny configuration runs end to end in such a directory and gives the in-repository run's
results; two experiments in two directories never touch each other's files; every preset plans in a
directory of its own; a config on the command line adjusts the experiment as Snakemake merges configs, or
replaces it when it names its own datasets; and the keys a config of your own must set are the two the
schema requires."""

import hashlib
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_runs import (
    ROOT,
    SNAKEMAKE,
    TINY_CONFIG,
    differences,
    initialise,
    placeholder_data,
    planned,
    run_bounded,
    snakemake,
)

from pipeline import deploy

needs_snakemake = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install '.[workflow]')")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_version_is_pyprojects():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert result.stdout.strip() == f"ddlstm {VERSION}"


# -- the working directory ----------------------------------------------------------------------------------


def test_init_writes_a_working_directory_and_keeps_what_is_there(tmp_path):
    written = deploy.init(tmp_path / "exp", "mstcn")
    names = {str(path.relative_to(tmp_path / "exp")) for path in written}
    assert names == {"workflow/Snakefile", "config/config.yaml", "README.md", "workflow/profiles/default/config.yaml",
                     "workflow/profiles/slurm/config.yaml", "workflow/profiles/slurm-test/config.yaml"}
    snakefile = (tmp_path / "exp/workflow/Snakefile").read_text()
    assert "module ddlstm:" in snakefile and "use rule * from ddlstm" in snakefile
    assert "pipeline.deploy.snakefile()" in snakefile and 'configfile: "config/config.yaml"' in snakefile
    config = (tmp_path / "exp/config/config.yaml").read_text()
    assert config.startswith("# The experiment of this working directory, from ddlstm's preset \"mstcn\"")
    assert yaml.safe_load(config) == yaml.safe_load((ROOT / "config/mstcn.yaml").read_text())
    assert (tmp_path / "exp/results").is_dir() and (tmp_path / "exp/resources").is_dir()
    (tmp_path / "exp/config/config.yaml").write_text("edited")
    with pytest.raises(FileExistsError, match="config/config.yaml"):
        deploy.init(tmp_path / "exp", "demo")
    assert (tmp_path / "exp/config/config.yaml").read_text() == "edited"
    deploy.init(tmp_path / "exp", "demo", force=True)
    assert "preset \"demo\"" in (tmp_path / "exp/config/config.yaml").read_text()


def test_init_fails_in_one_line_naming_what_is_wrong(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "pipeline", "init", str(tmp_path / "x"), *args],
                              capture_output=True, text=True, cwd=tmp_path, check=False)

    unknown = run("--config", str(tmp_path / "nosuch.yaml"))
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "nosuch.yaml" in unknown.stderr and "Traceback" not in unknown.stderr
    assert run("--preset", "nosuch").returncode == 2  # argparse: not among the presets
    bad = run("--source", "svn:somewhere")
    assert bad.returncode == 1 and "--source 'svn:somewhere'" in bad.stderr


def test_a_github_source_is_written_as_snakedeploy_writes_it(tmp_path):
    deploy.init(tmp_path / "exp", source="github:someone/ddlstm@v0.2.0")
    snakefile = (tmp_path / "exp/workflow/Snakefile").read_text()
    assert 'github("someone/ddlstm", path="workflow/Snakefile", tag="v0.2.0")' in snakefile
    assert "import pipeline" not in snakefile


def test_the_presets_are_the_config_files():
    presets = deploy.presets()
    assert presets["demo"] == deploy.resource_root() / "config/config.yaml"
    assert set(presets) == {"demo"} | {path.stem for path in (ROOT / "config").glob("*.yaml") if path.stem != "config"}


# -- the package the jobs run -------------------------------------------------------------------------------


def test_the_package_comes_from_where_the_workflow_came_from(tmp_path):
    hosted = SimpleNamespace(host="github.com", repo="someone/ddlstm", ref="v0.2.0")
    assert deploy.package_requirement(hosted) == "ddlstm @ git+https://github.com/someone/ddlstm@v0.2.0"
    local_git = SimpleNamespace(repo_path=str(tmp_path), ref="main")
    assert deploy.package_requirement(local_git) == f"ddlstm @ git+{tmp_path.as_uri()}@main"
    # a workflow read from files: the package as installed here (this checkout, editable or on sys.path)
    assert deploy.package_requirement(ROOT / "workflow/rules") == f"ddlstm @ {ROOT.as_uri()}"


def test_the_jobs_conda_environment_adds_the_package_to_the_rules_dependencies(tmp_path):
    template = ROOT / "workflow/envs/ddlstm.yaml"
    path = deploy.conda_environment(template, "ddlstm @ git+https://github.com/someone/ddlstm@v0.2.0", tmp_path)
    spec = yaml.safe_load(path.read_text())
    pip = next(entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict))
    base = next(entry["pip"] for entry in yaml.safe_load(template.read_text())["dependencies"] if isinstance(entry, dict))
    assert pip == [*base, "ddlstm @ git+https://github.com/someone/ddlstm@v0.2.0"]
    assert deploy.conda_environment(template, pip[-1], tmp_path) == path  # the same content, the same file
    assert deploy.conda_environment(template, "ddlstm==0.2.0", tmp_path) != path


# -- the config of a working directory ------------------------------------------------------------------------


@needs_snakemake
def test_a_command_line_config_without_datasets_adjusts_the_experiment_key_by_key(tmp_path):
    folder = initialise(tmp_path / "exp", "--config", str(ROOT / TINY_CONFIG))
    (tmp_path / "longer.yaml").write_text("recurrent:\n  iterations: 7\n")
    result = snakemake("-n", "-p", "--forceall", "--configfile", str(tmp_path / "longer.yaml"), cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    commands = [line for line in result.stdout.splitlines() if "python -m pipeline train" in line]
    # the one key given changes; the experiment's other keys of the same section stay
    assert commands and all("--iterations 7" in line and "--hidden 8" in line for line in commands)


@needs_snakemake
def test_a_command_line_config_naming_datasets_is_a_whole_experiment(tmp_path):
    folder = initialise(tmp_path / "exp", "--preset", "demo")
    result = snakemake("-n", "--forceall", "--configfile", str(ROOT / TINY_CONFIG), cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = planned(result)
    # the tiny experiment alone: the demo's third dataset, its group and its export do not leak in
    assert jobs["frames"] == 2 and "train_group" not in jobs and "export" not in jobs, jobs
    assert "synsalads" not in result.stdout


@needs_snakemake
@pytest.mark.parametrize("key, value, message", [
    ("groups", [["synbreakfast", "syncooking", "synsalads"]], r"config: groups: 'synsalads' is not a key"),
    ("exports", ["synbreakfast+synsalads/split1/joint-ddlstm-L1"], r"config: exports: .*'synbreakfast\+synsalads'"),
    ("exports", ["synbreakfast+syncooking/split3/joint-ddlstm-L1"], r"config: exports: .*split3 is not one of"),
])
def test_a_group_or_export_of_datasets_the_experiment_lacks_is_an_error_naming_it(tmp_path, key, value, message):
    import re

    config = yaml.safe_load((ROOT / TINY_CONFIG).read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**config, key: value}))
    folder = initialise(tmp_path / "exp", "--config", str(tmp_path / "mine.yaml"))
    result = snakemake("-n", cwd=folder)
    assert result.returncode != 0 and re.search(message, result.stdout), result.stdout[-3000:]


@needs_snakemake
def test_a_config_of_your_own_needs_only_datasets_and_pairs(tmp_path):
    mine = {"datasets": {name: {"format": "mstcn", "annotations": f"resources/{name}", "fps": 15}
                         for name in ("kitchen_a", "kitchen_b")},
            "pairs": [["kitchen_a", "kitchen_b"]]}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    folder = initialise(tmp_path / "exp", "--config", str(tmp_path / "mine.yaml"))
    placeholder_data(folder, "config/config.yaml")
    result = snakemake("-n", "-p", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = planned(result)
    # the schema's defaults: 4 splits, Table 1's five runs at depth 3, Fig. 7's two initial alphas on split 1
    assert jobs["linear"] == 8 and jobs["train"] == 4 * 5 and jobs["alpha_init"] == 2, jobs
    assert "--iterations 50000" in result.stdout and "--history 200" in result.stdout
    del mine["pairs"]
    (folder / "config/config.yaml").write_text(yaml.safe_dump(mine))
    missing = snakemake("-n", cwd=folder)
    assert missing.returncode != 0 and "'pairs' is a required property" in missing.stdout


@needs_snakemake
@pytest.mark.parametrize("preset", sorted(deploy.presets()))
def test_every_preset_plans_in_a_directory_of_its_own(tmp_path, preset):
    folder = initialise(tmp_path / preset, "--preset", preset)
    placeholder_data(folder, "config/config.yaml")
    result = snakemake("-n", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:]
    assert planned(result).get("tables") == 1
    lint = snakemake("--lint", cwd=folder)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout, lint.stdout[-3000:]


# -- from a wheel, without the checkout -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory):
    """The python of a fresh virtual environment holding this project's wheel: the dependencies are the test
    environment's (its site-packages as a plain path, so its editable install of the checkout is not
    loaded), the package and its workflow the wheel's."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(folder / "dist"), str(ROOT)], check=True, cwd=folder, timeout=600)
    (wheel,) = (folder / "dist").glob("ddlstm-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True, timeout=120)
    python = folder / "venv/bin/python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=600)
    return python


def clean_env() -> dict:
    """The environment of a user's shell: no PYTHONPATH, nothing pointing at the checkout."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_the_wheel_carries_its_workflow_and_presets(wheel_python, tmp_path):
    script = "import pipeline, pipeline.deploy as d; print(pipeline.__file__, d.snakefile(), pipeline.__version__)"
    result = run_bounded([str(wheel_python), "-c", script], 120, cwd=tmp_path, env=clean_env())
    package, snakefile, version = result.stdout.split()
    site = wheel_python.parents[1]
    assert Path(package).is_relative_to(site) and not Path(package).is_relative_to(ROOT)
    assert Path(snakefile) == Path(package).parent / "bundled/workflow/Snakefile"
    assert version == VERSION


@pytest.fixture(scope="session")
def wheel_run(wheel_python, tmp_path_factory):
    """`ddlstm init` from the wheel's environment, then the tiny configuration run to the end in that directory
    by the same environment's Snakemake, with the bundle of one run and the HTML report: the folder."""
    if SNAKEMAKE is None:
        pytest.skip("snakemake is not installed (pip install '.[workflow]')")
    folder = initialise(tmp_path_factory.mktemp("deployed") / "experiment", "--config", str(ROOT / TINY_CONFIG),
                        python=str(wheel_python), env=clean_env())
    snakemake_command = [str(wheel_python), "-m", "snakemake"]
    for args in (["--cores", "2"], ["--cores", "2", BUNDLE], ["--report", "results/report.html"]):
        result = run_bounded([*snakemake_command, *args], 900, cwd=folder, env=clean_env())
        assert result.returncode == 0, result.stdout[-3000:]
    return folder


BUNDLE = "results/models/synbreakfast+syncooking/split1/joint-ddlstm-L1.ddlstm"


def test_a_deployed_experiment_runs_from_the_wheel_and_equals_the_in_repository_run(wheel_run, tiny_run):
    for name in ("table1", "table2", "segmentation"):
        assert (wheel_run / f"results/tables/{name}.md").stat().st_size > 0
    for number in (5, 6, 7):
        assert (wheel_run / f"results/figures/fig{number}.png").read_bytes()[:4] == b"\x89PNG"
    assert (wheel_run / BUNDLE).stat().st_size > 0
    report = (wheel_run / "results/report.html").read_text(errors="replace")
    assert "Dual-Domain LSTM" in report  # the workflow's description (workflow/report/workflow.rst)
    # the bundle is asked for here only; the rest must be what the checkout's run wrote
    assert differences(tiny_run, wheel_run, skip={"models", "report.html"}) == []


def tree(folder: Path) -> dict[str, str]:
    """Every file under a folder by its content's hash (the Snakemake metadata folder aside)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*") if path.is_file() and ".snakemake" not in path.parts}


def test_two_experiments_never_touch_each_others_files(wheel_run, wheel_python, tmp_path):
    before = tree(wheel_run)
    other = initialise(tmp_path / "other", "--config", str(ROOT / TINY_CONFIG), python=str(wheel_python),
                       env=clean_env())
    result = run_bounded([str(wheel_python), "-m", "snakemake", "--cores", "2", "results/frames/syncooking/report.csv"],
                         600, cwd=other, env=clean_env())
    assert result.returncode == 0, result.stdout[-3000:]
    assert (other / "results/frames/syncooking/report.csv").is_file()
    assert (other / "resources/synthetic/manifest.json").is_file()
    assert tree(wheel_run) == before
    assert set(os.listdir(tmp_path)) == {"other"}
