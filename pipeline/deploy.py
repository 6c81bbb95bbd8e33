"""The workflow as an installed program: where its files are, and one working directory per experiment.

A wheel of this package carries the Snakemake workflow (`workflow/`) and the experiment presets
(`config/*.yaml`) as `pipeline/bundled/` (setup.py copies them at build time); in a checkout, editable
install or not, they are the repository's own folders. `ddlstm init DIR --preset NAME` writes a
working directory the way snakedeploy does for the Snakemake workflow catalog: `workflow/Snakefile`
with a `module` pointing at this workflow and `use rule * from ddlstm`, `config/config.yaml` copied from
the preset, the run profiles, and a short README. `snakemake --cores all` inside it runs that experiment,
and its `resources/`, `results/` and `.snakemake/` are its own.

The workflow imports this package while it plans (the environment that runs snakemake has it), and
its jobs run `python -m pipeline` in that same environment, or, with `--sdm conda`, in a conda
environment that installs the package from where the workflow came from: the same installed
distribution (PEP 610's direct_url.json says from where), or the git repository and tag of a
`github(...)` module (`conda_environment`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path

import yaml

from .io import write_text

DISTRIBUTION = "ddlstm"
# config/config.yaml is the default experiment; `ddlstm init --preset demo` names it so.
DEFAULT_PRESET = "demo"
PROFILES = ("default", "slurm", "slurm-test")
_PACKAGE = Path(__file__).resolve().parent


def version() -> str:
    """The package's version (pyproject.toml's)."""
    from . import __version__

    return __version__


def resource_root() -> Path:
    """The folder holding `workflow/` and `config/`: the wheel's bundled copy, else the checkout."""
    for root in (_PACKAGE / "bundled", _PACKAGE.parent):
        if (root / "workflow" / "Snakefile").is_file() and (root / "config").is_dir():
            return root
    raise FileNotFoundError(
        f"{_PACKAGE}: neither a bundled workflow (pipeline/bundled/workflow/Snakefile, which a wheel carries) "
        "nor a checkout's workflow/Snakefile beside the package; reinstall ddlstm from a wheel or a checkout"
    )


def snakefile() -> Path:
    """The workflow's Snakefile, for `module ddlstm: snakefile: ...`."""
    return resource_root() / "workflow" / "Snakefile"


def presets() -> dict[str, Path]:
    """Preset name -> config file: every config/*.yaml, config.yaml under the name "demo"."""
    files = sorted((resource_root() / "config").glob("*.yaml"))
    return {DEFAULT_PRESET if path.stem == "config" else path.stem: path for path in files}


# -- where the package comes from, for a conda environment of the jobs ---------------------------------------


def _installed_requirement() -> str:
    """A pip requirement that installs this very package again: its direct URL when pip recorded one
    (a wheel file, a folder, an editable checkout, a git commit), else the version from an index."""
    try:
        direct = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if not direct:
        if (_PACKAGE.parent / "pyproject.toml").is_file():  # a checkout on sys.path, not installed
            return f"{DISTRIBUTION} @ {_PACKAGE.parent.as_uri()}"
        return f"{DISTRIBUTION}=={version()}"
    record = json.loads(direct)
    url = record["url"]
    vcs = record.get("vcs_info")
    if vcs:
        return f"{DISTRIBUTION} @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    return f"{DISTRIBUTION} @ {url}"


def package_requirement(workflow_source=None) -> str:
    """The pip requirement of the package that belongs to a workflow: for a module read from a hosted git
    repository (Snakemake's `github(...)`, `gitlab(...)`) or a local one (`gitfile(...)`), that repository
    at the same tag, commit or branch; for a workflow read from files, the installed package itself.
    `workflow_source` is Snakemake's `workflow.current_basedir` (a path or a source-file object)."""
    ref = getattr(workflow_source, "ref", None)
    if ref and getattr(workflow_source, "host", None) and getattr(workflow_source, "repo", None):
        return f"{DISTRIBUTION} @ git+https://{workflow_source.host}/{workflow_source.repo}@{ref}"
    if ref and getattr(workflow_source, "repo_path", None):
        return f"{DISTRIBUTION} @ git+{Path(workflow_source.repo_path).resolve().as_uri()}@{ref}"
    return _installed_requirement()


def conda_environment(template: str | Path, requirement: str, folder: str | Path) -> Path:
    """The rules' conda environment: the dependencies of `template` (workflow/envs/ddlstm.yaml) plus the
    package itself by `requirement`, written once under `folder` (named by its content, so a changed
    source or version makes a new environment) and returned."""
    spec = yaml.safe_load(Path(template).read_text())
    dependencies = spec["dependencies"]
    pip = next((entry for entry in dependencies if isinstance(entry, dict) and "pip" in entry), None)
    if pip is None:
        pip = {"pip": []}
        dependencies.append(pip)
    pip["pip"] = [*pip["pip"], requirement]
    text = ("# Written by the ddlstm workflow: workflow/envs/ddlstm.yaml and the package the workflow belongs to.\n"
            + yaml.safe_dump(spec, sort_keys=False))
    path = Path(folder) / f"ddlstm-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not path.is_file() or path.read_text() != text:
        write_text(path, text)
    return path.resolve()


# -- ddlstm init -------------------------------------------------------------------------------------------------

SNAKEFILE = """\
# The ddlstm workflow, {source_note}; `ddlstm init` wrote this file with ddlstm {version}.
# Run `snakemake --cores all` in this folder (the folder above workflow/). The experiment is
# config/config.yaml; --configfile / --config on the command line adjust it key by key.
from snakemake.utils import min_version
{imports}
min_version("8.0")


configfile: "config/config.yaml"


module ddlstm:
    snakefile:
        {snakefile}
    config:
        config


use rule * from ddlstm
"""

CONFIG_HEADER = """\
# The experiment of this working directory, from ddlstm's preset "{preset}" ({origin}).
# Edit it here: the datasets (name -> reader spec), the pairs and splits to run, and the stages'
# settings. For your own data, set `datasets` and `pairs` (and remove `groups`, `exports` and the
# `tables` entries that name datasets you do not have); every key is documented in ddlstm's config/README.md,
# and `snakemake -n` checks the file before anything runs.
"""

README = """\
# {name}: a ddlstm experiment (preset "{preset}")

`snakemake --cores all` runs it here; `config/config.yaml` is the experiment, `resources/` its inputs and
`results/` everything it writes. `snakemake --profile workflow/profiles/slurm` submits it to a SLURM cluster.
"""

_GIT_SOURCE = re.compile(r"^(?P<host>github|gitlab):(?P<repo>[\w.-]+/[\w.-]+)@(?P<ref>[\w./-]+)$")


def _module_source(source: str) -> tuple[str, str]:
    """The Snakefile's `snakefile:` expression and a note on it, from --source."""
    if source == "installed":
        return ("pipeline.deploy.snakefile()",
                "as installed with the ddlstm package (its location is looked up when snakemake starts)")
    match = _GIT_SOURCE.match(source)
    if not match:
        raise ValueError(f"--source {source!r}: expected 'installed' or github:OWNER/REPO@TAG (gitlab: likewise)")
    expression = f'{match["host"]}("{match["repo"]}", path="workflow/Snakefile", tag="{match["ref"]}")'
    return expression, f"from {match['host']}.com/{match['repo']} at {match['ref']}"


def init(directory: str | Path, preset: str = DEFAULT_PRESET, config: str | Path | None = None,
         source: str = "installed", force: bool = False) -> list[Path]:
    """Write a working directory for one experiment (see the module's docstring); returns the files written.
    `config` (a config file of your own) replaces the preset; `force` lets existing files be overwritten."""
    directory = Path(directory)
    available = presets()
    if config is None and preset not in available:
        raise ValueError(f"--preset {preset!r}: not a preset; choose one of {', '.join(available)}")
    origin = Path(config) if config is not None else available[preset]
    if not origin.is_file():
        raise FileNotFoundError(f"{origin}: no such config file")
    yaml.safe_load(origin.read_text())  # a broken file is an error here, not at the first run
    expression, note = _module_source(source)
    imports = "\nimport pipeline.deploy\n" if source == "installed" else ""
    snakefile_text = SNAKEFILE.format(source_note=note, version=version(), snakefile=expression, imports=imports)
    name = preset if config is None else origin.stem
    files = {
        "workflow/Snakefile": snakefile_text,
        "config/config.yaml": CONFIG_HEADER.format(preset=name, origin=origin.name) + origin.read_text(),
        "README.md": README.format(name=directory.resolve().name, preset=name),
    }
    profiles = resource_root() / "workflow" / "profiles"
    for profile in PROFILES:
        files[f"workflow/profiles/{profile}/config.yaml"] = (profiles / profile / "config.yaml").read_text()
    existing = [relative for relative in files if (directory / relative).exists()]
    if existing and not force:
        raise FileExistsError(f"{directory}: already holds {', '.join(existing)} (--force overwrites them)")
    written = []
    for relative, text in files.items():
        write_text(directory / relative, text)
        written.append(directory / relative)
    for folder in ("resources", "results"):
        os.makedirs(directory / folder, exist_ok=True)
    return written



def init_main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="ddlstm init", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"presets: {', '.join(presets())}")
    parser.add_argument("directory", help="the working directory to write (created if missing)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(presets()),
                        help=f"the experiment to start from (default: {DEFAULT_PRESET}, the synthetic demo)")
    parser.add_argument("--config", help="a config file of your own instead of a preset")
    parser.add_argument("--source", default="installed",
                        help="where the workflow comes from: 'installed' (default: this package's copy) or "
                             "github:OWNER/REPO@TAG (a release of the repository, as snakedeploy writes it)")
    parser.add_argument("--force", action="store_true", help="overwrite files the directory already holds")
    args = parser.parse_args(argv)
    written = init(args.directory, args.preset, args.config, args.source, args.force)
    for path in written:
        print(path)
    print(f"\nnext: cd {args.directory} && snakemake --cores all")
    return 0
