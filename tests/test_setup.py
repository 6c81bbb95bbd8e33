"""What installs the project: the conda environment files agree with pyproject.toml and the Makefile, the
rules' environment does not depend on where conda puts it, and `make` stops early on too old a Python."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_name(text: str) -> str:
    return re.split(r"[<>=!~ ;\[]", text.strip(), maxsplit=1)[0].lower()


def environment(path):
    data = yaml.safe_load((ROOT / path).read_text())
    conda = [d for d in data["dependencies"] if isinstance(d, str)]
    pip = next((d["pip"] for d in data["dependencies"] if isinstance(d, dict)), [])
    return data, {requirement_name(d): d for d in conda}, {requirement_name(d): d for d in pip if not d.startswith("-")}


def makefile_torch_pins() -> dict[str, str]:
    spec = re.search(r"^TORCH_SPEC \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    return {requirement_name(part): part for part in spec.split()}


@pytest.mark.parametrize("path", ["environment.yml", "workflow/envs/ddlstm.yaml"])
def test_environment_files_hold_what_the_package_needs(path):
    _, conda, pip = environment(path)
    needed = [requirement_name(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    missing = [name for name in needed if name not in conda and name not in pip]
    assert not missing, f"{path} lacks {missing}"
    for name, pinned in makefile_torch_pins().items():  # the same PyTorch as `make` installs
        assert pip.get(name) == pinned, f"{path}: {name} is {pip.get(name) or conda.get(name)!r}, the Makefile {pinned!r}"
    assert conda["python"] == "python=3.11"


def test_the_users_environment_has_snakemake_from_a_channel_that_carries_it():
    data, conda, _ = environment("environment.yml")
    assert {"snakemake", "snakemake-executor-plugin-slurm"} <= set(conda)
    assert "bioconda" in data["channels"]  # the plugin is on bioconda only
    assert "-e ." in next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))


def test_the_rules_environment_does_not_install_the_package_by_a_relative_path():
    # the package comes with the environment the workflow writes for --sdm conda (pipeline.deploy), from
    # where the workflow came from, never a path relative to wherever conda puts the environment
    text = (ROOT / "workflow/envs/ddlstm.yaml").read_text()
    assert "-e " not in text and "../" not in text
    assert "PYTHONPATH" not in (ROOT / "workflow/rules/common.smk").read_text()


def test_python_version_is_stated_alike():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.11"
    assert "Python >= 3.11" in (ROOT / "README.md").read_text()


def test_make_stops_early_on_an_older_python(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\n"  # a Python that says it is 3.10
                    f"exec {sys.executable} -c \"import sys; sys.version_info = (3, 10, 14); "
                    "sys.version = '3.10.14'; exec(sys.argv[1])\" \"$2\"\n")
    fake.chmod(0o755)
    result = subprocess.run(["make", "-f", str(ROOT / "Makefile"), f"VENV={tmp_path / 'venv'}", f"PYTHON={fake}",
                             str(tmp_path / "venv" / ".installed")], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
    assert "ddlstm needs Python >= 3.11" in result.stderr and "is Python 3.10.14" in result.stderr
    assert not (tmp_path / "venv").exists()
