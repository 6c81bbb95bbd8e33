"""Each option lives in one place: a configuration dataclass field with its help text. The workflow's
schema section of each step must hold exactly those fields, apart from the ones named here, and
config/README.md must document every key of the schema, so that a key cannot drift between the
config, the schema, the docs and the code."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pipeline.features.finetune import FinetuneConfig
from pipeline.features.linear import LinearConfig
from pipeline.training.boundary import BoundaryConfig
from pipeline.training.config import RecurrentConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
DOCS = (ROOT / "config/README.md").read_text()

# section: (the step's options, options the workflow sets per job or leaves to the step's default,
#           keys the workflow reads itself)
SECTIONS = {
    # joint: the workflow's switch of the joint classifier route, whose linear classifier takes joint_* as its
    # steps, batch size and learning rate (pipeline.features.joint_linear.JointLinearConfig)
    "features": (FinetuneConfig, {"device"}, {"extract_batch_size", "joint"}),
    "classifier": (LinearConfig, {"device"}, {"joint_steps", "joint_batch_size", "joint_lr"}),
    "boundary": (BoundaryConfig, {"device", "eval_batch"}, set()),
    # protocol, model and layers come from each run's wildcards
    # (cuda_graphs, like device, is a runtime matter)
    "recurrent": (RecurrentConfig, {"device", "eval_batch", "eval_every", "protocol", "model", "layers", "cuda_graphs"},
                  {"depths", "table1_depth", "history_by_depth"}),
}


@pytest.mark.parametrize("section", SECTIONS)
def test_schema_section_equals_the_steps_options(section):
    config_class, per_job, workflow_only = SECTIONS[section]
    options = {f.name for f in fields(config_class)}
    keys = set(SCHEMA["properties"][section]["properties"])
    assert keys - workflow_only == options - per_job, (
        f"schema '{section}' and {config_class.__name__} differ: only in the schema "
        f"{sorted(keys - workflow_only - options)}, only in the code {sorted(options - per_job - keys)}")
    assert workflow_only <= keys and per_job <= options  # the exceptions themselves exist


@pytest.mark.parametrize("section", [*SECTIONS, "synthetic", "frames", "tables", "figure7"])
def test_every_schema_key_is_documented(section):
    text = DOCS[DOCS.index(f"## `{section}`"):]
    text = text[:text.index("\n## ", 1)] if "\n## " in text[1:] else text
    documented = set(re.findall(r"`(\w+)`", text))
    missing = set(SCHEMA["properties"][section]["properties"]) - documented
    assert not missing, f"config/README.md, section {section}: {sorted(missing)} undocumented"


def test_every_option_has_help():
    for config_class, _, _ in SECTIONS.values():
        for item in fields(config_class):
            assert item.metadata.get("help"), f"{config_class.__name__}.{item.name} has no help text"


@pytest.mark.parametrize("section", SECTIONS)
def test_a_default_in_the_schema_is_the_steps_own(section):
    # a config that leaves a key out gets the same value whether the workflow or the step fills it in
    config_class = SECTIONS[section][0]
    defaults = {f.name: f.default for f in fields(config_class)}
    for key, spec in SCHEMA["properties"][section]["properties"].items():
        if "default" in spec and key in defaults:
            assert spec["default"] == defaults[key], f"{section}.{key}: schema {spec['default']!r}, step {defaults[key]!r}"


def test_a_config_must_name_only_its_datasets_and_pairs():
    assert SCHEMA["required"] == ["datasets", "pairs"]
    assert "`datasets` and `pairs`" in DOCS
