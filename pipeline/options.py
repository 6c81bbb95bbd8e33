"""Command-line options generated from a configuration dataclass, one `--flag` per field.

Each field is declared with `option(default, "help")`: its help text lives beside its default, and
the command line, `--help` and the tests that keep the workflow's schema in step all read it there.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import MISSING, field, fields


def option(default, help: str, choices: tuple | None = None, flag: str | None = None, parse=None):
    """A configuration field with its help text and, for a field of a few values, those values (the
    command line refuses others); `flag` names its command-line option where `--field-name` is taken by
    an argument of the command itself; `parse` reads its command-line value where the field's type
    cannot (a number or a word). A mutable default (a dict) is copied per instance."""
    metadata = {"help": help, "choices": choices, "flag": flag, "parse": parse}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _base_type(annotation):
    """int for `int | None`, etc."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0]
    return annotation


def _dest(item) -> str:
    """Where argparse keeps a field's value: its name, or its own flag's name where it has one."""
    flag = item.metadata.get("flag")
    return flag.lstrip("-").replace("-", "_") if flag else item.name


def add_options(parser: argparse.ArgumentParser, config_class) -> None:
    """Add `--field-name` for every field of `config_class` (booleans as --x / --no-x, dicts as JSON)."""
    hints = typing.get_type_hints(config_class)
    for item in fields(config_class):
        default = item.default if item.default is not MISSING else item.default_factory()
        kind = _base_type(hints[item.name])
        flag = item.metadata.get("flag") or "--" + item.name.replace("_", "-")
        text = f"{item.metadata['help']} (default: {default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text,
                                dest=_dest(item))
        elif kind is dict:
            parser.add_argument(flag, type=json.loads, default=default, help=text, dest=_dest(item))
        else:
            parser.add_argument(flag, type=item.metadata.get("parse") or kind, default=default, help=text,
                                choices=item.metadata.get("choices"), dest=_dest(item))


def flags(config_class) -> dict[str, str]:
    """Field -> command-line option of the fields whose option is not `--field-name` (for the workflow)."""
    return {item.name: item.metadata["flag"] for item in fields(config_class) if item.metadata.get("flag")}


def config_from(args: argparse.Namespace, config_class):
    return config_class(**{item.name: getattr(args, _dest(item)) for item in fields(config_class)})


def add_restart_option(parser: argparse.ArgumentParser) -> None:
    """`--restart-on-change`, shared by the steps that train from a checkpoint."""
    parser.add_argument("--restart-on-change", action="store_true",
                        help="a checkpoint of another configuration is set aside (checkpoint.stale.pt) and training "
                             "starts afresh, instead of stopping with an error (the workflow passes this)")
