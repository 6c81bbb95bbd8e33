"""What a dataset spec (a `datasets` entry of the workflow config) says before anything is read:
where the dataset's frame classifier starts from (its videos or its precomputed features) and which
paths it cannot be read without. Pure Python on purpose: the workflow imports it while planning,
where numpy or torch may not be installed.
"""

from __future__ import annotations

from pathlib import Path

ROUTES = ("videos", "features")
# Files within `annotations` each format cannot do without (beyond the per-video ones it finds by pattern).
REQUIRED = {
    "mstcn": ("mapping.txt", "groundTruth"),
    "breakfast": (),
    "salads": ("ann/low_level_actions.txt", "ann/sequences", "timestamps"),
    "mpii": (),
}


def features_folder(spec: dict, base_dir: str | Path | None = None) -> Path | None:
    """Where a spec's precomputed features are: its `features` key, or for an MS-TCN folder without
    `videos` its `features/` subfolder when that exists; None for a dataset read from its videos."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if spec.get("features"):
        return base / spec["features"]
    if spec.get("format") == "mstcn" and not spec.get("videos") and spec.get("annotations"):
        default = base / spec["annotations"] / "features"
        if default.is_dir():
            return default
    return None


def input_route(spec: dict, base_dir: str | Path | None = None) -> str:
    """"videos" or "features": what the dataset's frame classifier starts from."""
    name = spec.get("name", "<unnamed>")
    if spec.get("videos") and spec.get("features"):
        raise ValueError(f"dataset {name!r}: give either 'videos' (decode and fine-tune a CNN) or 'features' "
                         "(precomputed per-frame features), not both")
    if spec.get("videos"):
        return "videos"
    if features_folder(spec, base_dir) is not None:
        return "features"
    hint = ""
    if spec.get("format") == "mstcn" and spec.get("annotations"):
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        hint = f" (nor is there a features folder {base / spec['annotations'] / 'features'})"
    raise ValueError(f"dataset {name!r}: neither 'videos' nor 'features' is given{hint}; the pipeline needs one")


def required_paths(spec: dict) -> list[str]:
    """The paths a spec's dataset cannot be read without: `annotations` and the files its format needs
    inside it, `mapping`, and `videos` or `features` (the workflow makes them inputs, so that one
    missing stops the run before any job, naming it)."""
    paths = [spec["annotations"], *[str(Path(spec["annotations"]) / name) for name in REQUIRED.get(spec["format"], ())]]
    return paths + [spec[key] for key in ("mapping", "videos", "features") if spec.get(key)]
