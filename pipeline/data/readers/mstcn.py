"""Reader for the MS-TCN data layout, the form most users of these datasets have today.

    <root>/groundTruth/<video>.txt      one label name per line, one line per frame
    <root>/mapping.txt                  "index name" per line
    <root>/splits/{train,test}.splitN.bundle   one "<video>.txt" per line (optional)
    <root>/features/<video>.npy         (D, T) precomputed features (optional; `pipeline.data.precomputed`,
                                        attached by `load_dataset`)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..dataset import AnnotationError, Dataset, Split, Video, natural_key
from ..splits import leave_person_out, participant_from_name
from .common import class_id, read_mapping, read_text


def read_ground_truth(path: Path, ids: dict[str, int], mapping_path=None) -> np.ndarray:
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(path, "no frames")
    labels = np.empty(len(lines), dtype=np.int64)
    for index, line in enumerate(lines):
        label = line.strip()
        found = ids.get(label)
        if found is None:
            found = class_id(ids, label, path, index + 1, mapping_path)
        labels[index] = found
    return labels


def read_bundle_splits(splits_dir: Path, videos: set[str]) -> list[Split]:
    """train/test.splitN.bundle for N = 1, 2, ... as far as both files exist; every name must be one
    of `videos` (those with ground truth) and appear once, else an error names the bundle and line."""
    splits = []
    number = 1
    while (splits_dir / f"train.split{number}.bundle").is_file():
        test_path = splits_dir / f"test.split{number}.bundle"
        if not test_path.is_file():
            raise FileNotFoundError(f"{test_path} is missing (its train bundle exists)")
        sides = []
        for path in (splits_dir / f"train.split{number}.bundle", test_path):
            names = []
            for line_number, line in enumerate(read_text(path).splitlines(), start=1):
                if not line.strip():
                    continue
                video = re.sub(r"\.txt$", "", line.strip())
                if video not in videos:
                    raise AnnotationError(path, f"video {video!r} has no ground-truth file", line_number)
                if video in names:
                    raise AnnotationError(path, f"video {video!r} is listed twice", line_number)
                names.append(video)
            if not names:
                raise AnnotationError(path, "lists no video")
            sides.append(names)
        both = [video for video in sides[0] if video in set(sides[1])]
        if both:
            raise AnnotationError(test_path, f"video {both[0]!r} is also in {splits_dir / f'train.split{number}.bundle'}"
                                             f" ({len(both)} videos on both sides of split {number}"
                                             f"{': ' + ', '.join(both[:5]) if len(both) > 1 else ''})")
        splits.append(Split(train=sides[0], test=sides[1]))
        number += 1
    if not splits:
        raise FileNotFoundError(f"no train.split1.bundle in {splits_dir}")
    return splits


def read_mstcn(
    root: str | Path,
    name: str,
    fps: float,
    # the person recorded, from a video's name: Breakfast P03_..., 50 Salads rgb-01-1, GTEA S1_...
    participant_pattern: str = r"^(?:rgb-)?([A-Za-z]*\d+)",
    splits: str = "leave_person_out",  # or "bundles": the layout's own splits/ files
    num_splits: int = 4,
    background: str | None = None,
) -> Dataset:
    root = Path(root)
    mapping_path = root / "mapping.txt"
    class_names = read_mapping(mapping_path)
    ids = {label: index for index, label in enumerate(class_names)}
    gt_dir = root / "groundTruth"
    files = sorted(gt_dir.glob("*.txt"), key=lambda p: natural_key(p.stem))
    if not files:
        raise FileNotFoundError(f"no ground-truth files {gt_dir}/*.txt")
    videos = {}
    for path in files:
        videos[path.stem] = Video(
            name=path.stem,
            participant=participant_from_name(path.stem, participant_pattern),
            labels=read_ground_truth(path, ids, mapping_path),
        )
    if splits == "bundles":
        split_list = read_bundle_splits(root / "splits", set(videos))
    elif splits == "leave_person_out":
        split_list = leave_person_out({v.name: v.participant for v in videos.values()}, num_splits)
    else:
        raise ValueError(f"splits must be 'bundles' or 'leave_person_out', not {splits!r}")
    if background is not None and background not in ids:
        raise ValueError(f"background class {background!r} is not in {mapping_path}")
    dataset = Dataset(name=name, class_names=class_names, videos=videos, fps=fps, splits=split_list,
                      background=background)
    dataset.validate()
    return dataset
