"""Documentation that cannot rot silently: the site builds strictly; every relative link and anchor of the
user-facing Markdown resolves; every `ddlstm` subcommand and config key the docs name exists; the command
line's page is what the parsers print; no absolute machine path, no history in the user docs; the README is
a front page whose two commands are the Makefile's and CI's; the version is one number everywhere."""

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import STEPS

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "config/README.md", ROOT / "benchmarks/README.md",
                ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
# the pages a user reads for how things are now: no history there (CHANGELOG.md holds it)
USER_DOCS = [page for page in PAGES if page.name != "CHANGELOG.md"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as GitHub (and the site's table of contents) make them."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(page: Path):
    """(target path, anchor) of every relative Markdown link and image of a page."""
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield path, anchor


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for path, anchor in links(page):
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{path}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{path}#{anchor}: no such heading")
    assert not broken, f"{relative(page)}: {broken}"


def test_the_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install '.[docs]')")
    result = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    api = (tmp_path / "site/api/index.html").read_text()
    assert "DDLSTM" in api and "load_dataset" in api  # generated from pipeline.models' and pipeline.data's docstrings


def test_the_command_line_page_is_what_the_parsers_print():
    from pipeline.cli_reference import page

    assert (ROOT / "docs/cli.md").read_text() == page(), "docs/cli.md is stale: python -m pipeline.cli_reference > docs/cli.md"


def code(text: str) -> str:
    """The fenced code blocks and inline code spans of a page: where commands are written."""
    blocks = re.findall(r"^```.*?^```", text, flags=re.MULTILINE | re.DOTALL)
    return "\n".join([*blocks, *re.findall(r"`([^`\n]+)`", prose(text))])


def test_every_ddlstm_subcommand_the_docs_name_exists():
    named = {step for page in PAGES for step in re.findall(r"(?<![\w-])ddlstm ([a-z][a-z-]*)", code(page.read_text()))}
    unknown = {step for step in named if step not in STEPS}
    assert not unknown, f"the docs name ddlstm subcommands that do not exist: {sorted(unknown)}"
    assert {"init", "predict", "stream", "train"} <= named


def test_every_config_key_the_docs_name_exists():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    sections = {name for name, spec in schema.items() if "properties" in spec}
    missing = []
    for page in PAGES:
        for section, key in re.findall(r"`(\w+)\.(\w+)[`:]", page.read_text()):
            if section in sections and key not in schema[section]["properties"] and key not in FILE_SUFFIXES:
                missing.append(f"{relative(page)}: {section}.{key}")
    assert not missing, missing


FILE_SUFFIXES = {"py", "yaml", "md", "smk", "csv", "json", "h5", "npy", "png", "tsv"}


def test_no_absolute_machine_paths():
    pattern = re.compile(r"(/work/|/root/|/home/\w|/Users/\w|\.\./shared\b|C:\\)")
    found = [f"{relative(page)}: {match.group(0)}" for page in PAGES for match in pattern.finditer(page.read_text())]
    assert not found, found


HISTORY = re.compile(
    r"this round|this session|earlier try|in an earlier run|\bissues? #?\d+\b|\bsession\b"
    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b(~\d+)?",
    re.IGNORECASE)


@pytest.mark.parametrize("page", USER_DOCS, ids=relative)
def test_user_docs_hold_no_history(page):
    found = [match.group(0) for match in HISTORY.finditer(page.read_text())]
    assert not found, f"{relative(page)}: {found} (history belongs in CHANGELOG.md and git)"


def test_the_readme_is_a_front_page_with_the_makefiles_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220
    first = "\n".join(lines[:40])
    assert "unofficial implementation" in first and "Status" in first
    assert "make demo" in first and "make test" in first
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_config_readme_stands_alone_and_lists_every_config_file():
    text = (ROOT / "config/README.md").read_text()
    assert not list(links(ROOT / "config/README.md")), "config/README.md is shown alone: no relative links"
    for path in (ROOT / "config").glob("*.yaml"):
        assert f"`{path.name}`" in text, f"config/README.md does not list {path.name}"


def test_one_version_everywhere():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert result.stdout.strip() == f"ddlstm {VERSION}"
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d\d-\d\d$", (ROOT / "CHANGELOG.md").read_text(),
                     re.MULTILINE)
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(citation["version"]) == VERSION
    assert citation["preferred-citation"]["title"].startswith("DDLSTM")
