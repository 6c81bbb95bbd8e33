"""Dataset readers, one per annotation format, behind one call: `load_dataset(spec)`.

A spec is the dataset's entry in the workflow config:

    name: breakfast
    format: breakfast          # mstcn | breakfast | salads | mpii
    annotations: resources/breakfast/segmentation   # folder (or CSV file for mpii)
    videos: resources/breakfast/videos              # optional: recordings to decode
    fps: 15                    # rate of the frame-wise labels
    # any keyword of the format's reader, e.g. mapping, background, participant_pattern, splits
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ..dataset import Dataset
from ..videos import attach_videos
from .breakfast import read_breakfast
from .mpii import read_mpii
from .mstcn import read_mstcn
from .salads import read_salads

READERS = {
    "mstcn": read_mstcn,
    "breakfast": read_breakfast,
    "salads": read_salads,
    "mpii": read_mpii,
}

SPEC_KEYS = {"name", "format", "annotations", "videos", "fps"}


def reader_options(format_name: str) -> list[str]:
    """The extra spec keys a format accepts (its reader's keyword arguments)."""
    parameters = list(inspect.signature(READERS[format_name]).parameters)
    return [p for p in parameters[1:] if p not in SPEC_KEYS]


def load_dataset(spec: dict, base_dir: str | Path | None = None) -> Dataset:
    """Read the dataset `spec` describes; relative paths are taken from `base_dir`."""
    name = spec.get("name", "<unnamed>")
    format_name = spec.get("format")
    if format_name not in READERS:
        raise ValueError(f"dataset {name!r}: format must be one of {sorted(READERS)}, not {format_name!r}")
    for key in ("annotations", "fps"):
        if key not in spec:
            raise ValueError(f"dataset {name!r}: the key {key!r} is required")
    allowed = reader_options(format_name)
    unknown = set(spec) - SPEC_KEYS - set(allowed)
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown key(s) {sorted(unknown)} for format {format_name!r}; "
                         f"it accepts {sorted(SPEC_KEYS | set(allowed))}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    options = {key: spec[key] for key in allowed if key in spec}
    if "mapping" in options and options["mapping"] is not None:
        options["mapping"] = base / options["mapping"]
    dataset = READERS[format_name](base / spec["annotations"], name=name, fps=float(spec["fps"]), **options)
    if spec.get("videos"):
        attach_videos(dataset, base / spec["videos"])
    return dataset


__all__ = ["READERS", "load_dataset", "read_breakfast", "read_mpii", "read_mstcn", "read_salads", "reader_options"]
