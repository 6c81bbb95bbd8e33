"""Reader for the original 50 Salads activity annotations.

    <root>/ann/sequences/<id>-activityAnnotation.txt   "start_ts end_ts label" per line
    <root>/ann/low_level_actions.txt                    the lowest-level labels (51)
    <root>/ann/high_level_actions.txt                   coarser labels, skipped (optional)
    <root>/timestamps/timestamps-<id>.txt               one line per video frame, its timestamp first

Timestamps are the dataset's microsecond clock, not frame numbers: frame f belongs to a segment
when start_ts <= ts[f] <= end_ts. Only lowest-level labels are kept, plus an added background
class for frames no lowest-level segment covers (52 classes, docs/method.md §1). Where segments overlap
(about 100 places in the real files, by up to 23 s) the later-starting one wins. Videos are named
"rgb-<id>" like the recordings and the MS-TCN files.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..dataset import AnnotationError, Dataset, Video, natural_key
from ..splits import leave_person_out, participant_from_name
from .common import read_name_list, read_text

SEQUENCE_FILE = re.compile(r"^(.+)-activityAnnotation\.txt$")
log = logging.getLogger(__name__)


def parse_activity_annotation(path: Path, keep: set[str], skip: set[str]) -> list[tuple[int, int, str, int]]:
    """(start_ts, end_ts, label, line) for each segment with a label in `keep`; labels in `skip` are
    dropped, any other label is an error naming the line."""
    segments = []
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise AnnotationError(path, f"expected 'start_timestamp end_timestamp label', found {line!r}", line_number)
        start, end, label = int(parts[0]), int(parts[1]), parts[2]
        if end < start:
            raise AnnotationError(path, f"segment ends ({end}) before it starts ({start})", line_number)
        if label in keep:
            segments.append((start, end, label, line_number))
        elif label not in skip:
            raise AnnotationError(path, f"label {label!r} is neither a lowest-level nor a known higher-level action",
                                  line_number)
    if not segments:
        raise AnnotationError(path, "no lowest-level segment (an empty annotation would make the whole video "
                                    "background)")
    return segments


def read_timestamps(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"timestamp file {path} does not exist: 50 Salads annotations are on the "
                                "dataset's clock and need it to find frames")
    values = []
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if not parts[0].isdigit():
            raise AnnotationError(path, f"expected a timestamp first, found {line!r}", line_number)
        values.append(int(parts[0]))
    stamps = np.asarray(values, dtype=np.int64)
    if len(stamps) == 0:
        raise AnnotationError(path, "no timestamps")
    if np.any(np.diff(stamps) <= 0):
        bad = int(np.flatnonzero(np.diff(stamps) <= 0)[0]) + 2
        raise AnnotationError(path, "timestamps must increase", bad)
    return stamps


def frame_labels(segments, timestamps: np.ndarray, ids: dict[str, int], background_id: int,
                 path: Path | None = None) -> np.ndarray:
    """Frame-wise labels; a segment no frame's timestamp falls in is dropped with a warning naming
    `path` and its line (it lies outside the recording, or between two frames)."""
    labels = np.full(len(timestamps), background_id, dtype=np.int64)
    for start, end, label, line in sorted(segments, key=lambda s: (s[0], s[1])):
        first = np.searchsorted(timestamps, start, side="left")
        last = np.searchsorted(timestamps, end, side="right")
        if first >= last:
            log.warning("%s:%d: segment %s (%d-%d) covers no frame: the recording's timestamps run %d-%d; dropped",
                        path, line, label, start, end, timestamps[0], timestamps[-1])
        labels[first:last] = ids[label]
    return labels


def read_salads(
    root: str | Path,
    name: str,
    fps: float,
    participant_pattern: str = r"^rgb-(\d+)-",
    background: str = "background",
    num_splits: int = 4,
) -> Dataset:
    root = Path(root)
    ann = root / "ann"
    low = read_name_list(ann / "low_level_actions.txt")
    high_path = ann / "high_level_actions.txt"
    high = set(read_name_list(high_path)) if high_path.is_file() else set()
    class_names = [background] + low
    ids = {label: index for index, label in enumerate(class_names)}
    files = sorted((ann / "sequences").glob("*-activityAnnotation.txt"), key=lambda p: natural_key(p.name))
    if not files:
        raise FileNotFoundError(f"no activity annotations {ann}/sequences/*-activityAnnotation.txt")
    videos = {}
    for path in files:
        sequence = SEQUENCE_FILE.match(path.name)[1]
        segments = parse_activity_annotation(path, set(low), high)
        timestamps = read_timestamps(root / "timestamps" / f"timestamps-{sequence}.txt")
        video_name = f"rgb-{sequence}"
        videos[video_name] = Video(
            name=video_name,
            participant=participant_from_name(video_name, participant_pattern),
            labels=frame_labels(segments, timestamps, ids, ids[background], path),
        )
    dataset = Dataset(name=name, class_names=class_names, videos=videos, fps=fps,
                      splits=leave_person_out({v.name: v.participant for v in videos.values()}, num_splits),
                      background=background)
    dataset.validate()
    return dataset
