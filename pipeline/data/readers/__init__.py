"""Dataset readers, one per annotation format, behind one call: `load_dataset(spec)`.

A spec is the dataset's entry in the workflow config:

    name: breakfast
    format: breakfast          # mstcn | breakfast | salads | mpii
    annotations: resources/breakfast/segmentation   # folder (or CSV file for mpii)
    videos: resources/breakfast/videos              # recordings to decode, or:
    features: resources/breakfast/features          # precomputed per-frame features, one <video>.npy each
    feature_layout: auto       # optional: DxT or TxD fixes the arrays' orientation (auto: from their shape)
    fps: 15                    # rate of the frame-wise labels
    relabel: {old: new}        # optional: rename classes; classes renamed alike merge
    # any keyword of the format's reader, e.g. mapping, background, participant_pattern, splits

A dataset starts from its videos (decoded, then a CNN frame classifier) or from its features (a
linear frame classifier): `input_route(spec)` (`pipeline.dataset_spec`) says which. For `format: mstcn` without `videos`,
`features` defaults to `<annotations>/features` when that folder exists.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ...dataset_spec import features_folder, input_route, required_paths
from ..dataset import Dataset
from ..precomputed import LAYOUTS, attach_features
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

# Readers whose `background` names one of the dataset's own classes (the others add that class); with
# `relabel`, it names a class after the renaming.
OWN_BACKGROUND = {"mstcn", "breakfast"}
SPEC_KEYS = {"name", "format", "annotations", "videos", "features", "feature_layout", "fps", "relabel"}


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
    background = None
    if spec.get("relabel") and format_name in OWN_BACKGROUND and "background" in options:
        background, options["background"] = options["background"], None
    dataset = READERS[format_name](base / spec["annotations"], name=name, fps=float(spec["fps"]), **options)
    if spec.get("relabel"):
        dataset = dataset.relabelled(dict(spec["relabel"]))
    if background is not None:
        if background not in dataset.class_names:
            raise ValueError(f"dataset {name!r}: background class {background!r} is not among its classes after "
                             f"relabel: {dataset.class_names}")
        dataset.background = background
    if spec.get("videos"):
        attach_videos(dataset, base / spec["videos"])
    elif (features := features_folder(spec, base)) is not None:
        attach_features(dataset, features)
        layout = spec.get("feature_layout", "auto")
        if layout not in LAYOUTS:
            raise ValueError(f"dataset {name!r}: feature_layout must be one of {list(LAYOUTS)}, not {layout!r}")
        dataset.feature_layout = layout
    return dataset


__all__ = ["READERS", "features_folder", "input_route", "load_dataset", "read_breakfast", "read_mpii", "read_mstcn", "read_salads", "read_spec", "reader_options", "required_paths"]


def read_spec(source: str, name: str | None = None) -> dict:
    """A dataset spec from inline JSON or a JSON/YAML file. The file may hold one spec, or several
    under a "datasets" key or at top level by name (a synthetic manifest, a workflow config), in
    which case `name` picks one."""
    import json

    text = source.strip()
    if text.startswith("{"):
        data = json.loads(text)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"dataset spec {path} does not exist (give a JSON/YAML file or inline JSON)")
        import yaml

        data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and "format" in data:
        return data
    specs = data.get("datasets", data) if isinstance(data, dict) else None
    if not isinstance(specs, dict) or name is None or name not in specs:
        available = sorted(specs) if isinstance(specs, dict) else []
        raise ValueError(f"{source}: pick one dataset spec with a name among {available}" if name is None
                         else f"{source}: no dataset spec named {name!r}; found {available}")
    spec = dict(specs[name])
    spec.setdefault("name", name)
    return spec
