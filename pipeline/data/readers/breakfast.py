"""Reader for Breakfast's original segmentation files.

    <root>/<activity>/labels/<video>.txt   "start-end label" per line, 1-based inclusive frames

The ranges of a file must tile the video from frame 1 without gaps or overlaps (all 1,712 coarse
files do); an empty range such as "1-0 SIL" is skipped. Class names come from an MS-TCN `mapping.txt` when given, so that ids agree with the
MS-TCN layout; otherwise from the labels found, background first and the rest sorted.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..dataset import AnnotationError, Dataset, Video, labels_from_ranges, natural_key
from ..splits import leave_person_out, participant_from_name
from .common import class_id, read_mapping, read_text

RANGE_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s+(\S+)\s*$")


def parse_segmentation(path: Path) -> list[tuple[int, int, str, int]]:
    """(first, last, label, line) per range, frames 0-based inclusive, checked to tile the video."""
    ranges = []
    expected_start = 1
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        match = RANGE_LINE.match(line)
        if match is None:
            raise AnnotationError(path, f"expected 'start-end label', found {line!r}", line_number)
        start, end, label = int(match[1]), int(match[2]), match[3]
        if start == expected_start and end == start - 1:
            continue  # an empty range ("1-0 SIL"): 14 of the real coarse files have one
        if start != expected_start or end < start:
            raise AnnotationError(path, f"range {start}-{end} does not continue from frame {expected_start - 1} "
                                        "(ranges must tile the video from frame 1)", line_number)
        ranges.append((start - 1, end - 1, label, line_number))
        expected_start = end + 1
    if not ranges:
        raise AnnotationError(path, "no ranges")
    return ranges


def read_breakfast(
    root: str | Path,
    name: str,
    fps: float,
    participant_pattern: str = r"^(P\d+)",
    mapping: str | Path | None = None,
    background: str | None = "SIL",
    num_splits: int = 4,
) -> Dataset:
    root = Path(root)
    files = sorted((p for p in root.rglob("*.txt") if p.parent.name == "labels"), key=lambda p: natural_key(p.stem))
    if not files:
        raise FileNotFoundError(f"no segmentation files {root}/<activity>/labels/*.txt")
    parsed = {path: parse_segmentation(path) for path in files}
    if mapping is not None:
        class_names = read_mapping(mapping)
    else:
        found = sorted({r[2] for ranges in parsed.values() for r in ranges} - {background})
        class_names = ([background] if background else []) + found
    ids = {label: index for index, label in enumerate(class_names)}
    videos, annotated_in = {}, {}
    for path, ranges in parsed.items():
        if path.stem in videos:
            raise AnnotationError(path, f"video {path.stem!r} is annotated twice, also in {annotated_in[path.stem]}")
        annotated_in[path.stem] = path
        id_ranges = [(first, last, class_id(ids, label, path, line, mapping), line)
                     for first, last, label, line in ranges]
        videos[path.stem] = Video(
            name=path.stem,
            participant=participant_from_name(path.stem, participant_pattern),
            labels=labels_from_ranges(id_ranges, ranges[-1][1] + 1, path),
        )
    if background is not None and background not in ids:
        raise ValueError(f"background class {background!r} is not among the classes of {root}")
    dataset = Dataset(name=name, class_names=class_names, videos=videos, fps=fps,
                      splits=leave_person_out({v.name: v.participant for v in videos.values()}, num_splits),
                      background=background)
    dataset.validate()
    return dataset
