"""One in-memory description of a frame-labelled video dataset, whatever format it was read from.

Every reader (`pipeline.data.readers`) returns a `Dataset`: its class names, one `Video` per
recording (name, participant, frame-wise label ids at `fps`, where its video and features are), and
its train/test splits. The later stages only ever see this description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


class AnnotationError(ValueError):
    """A dataset file that cannot be read as documented; the message names the file (and line)."""

    def __init__(self, path, message, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


@dataclass
class Video:
    name: str  # unique within its dataset, e.g. "P03_cam01_P03_cereals"
    participant: str  # the person recorded; splits never put one participant on both sides
    labels: np.ndarray  # (T,) int64 class ids, one per frame at the dataset's fps
    video_path: Path | None = None  # the recording, if known
    features_path: Path | None = None  # precomputed per-frame features (`pipeline.data.precomputed`)

    @property
    def num_frames(self) -> int:
        return len(self.labels)


@dataclass
class Split:
    train: list[str]  # video names
    test: list[str]


@dataclass
class Dataset:
    name: str
    class_names: list[str]
    videos: dict[str, Video]  # by name, in a stable order
    fps: float  # rate of the frame-wise labels
    splits: list[Split] = field(default_factory=list)
    background: str | None = None  # class excluded from segmental metrics, if the dataset has one
    feature_layout: str = "auto"  # precomputed features: "DxT", "TxD", or "auto" (`pipeline.data.precomputed`)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def background_id(self) -> int | None:
        return None if self.background is None else self.class_names.index(self.background)

    def participants(self) -> list[str]:
        return sorted({v.participant for v in self.videos.values()}, key=natural_key)

    def split(self, index: int) -> Split:
        """Split `index`, counted from 1 as the datasets' own split files are."""
        if not 1 <= index <= len(self.splits):
            raise IndexError(f"dataset {self.name!r} has splits 1..{len(self.splits)}, not {index}")
        return self.splits[index - 1]

    def resampled(self, fps: float | None) -> Dataset:
        """This dataset with labels at `fps` (`resample_labels`); itself when `fps` is None or unchanged."""
        if fps is None or fps == self.fps:
            return self
        videos = {name: replace(video, labels=resample_labels(video.labels, self.fps, fps))
                  for name, video in self.videos.items()}
        return replace(self, videos=videos, fps=float(fps))

    def relabelled(self, renames: dict[str, str]) -> Dataset:
        """This dataset with classes renamed; classes renamed to the same name merge (e.g. 50 Salads'
        action_start and action_end into one background class). The merged classes keep the position
        of their first member; `background` follows its renaming."""
        unknown = sorted(set(renames) - set(self.class_names))
        if unknown:
            raise ValueError(f"dataset {self.name!r}: relabel names classes it does not have: {unknown}; "
                             f"its classes are {self.class_names}")
        new_names = list(dict.fromkeys(renames.get(name, name) for name in self.class_names))
        remap = np.array([new_names.index(renames.get(name, name)) for name in self.class_names], np.int64)
        videos = {name: replace(video, labels=remap[video.labels]) for name, video in self.videos.items()}
        background = None if self.background is None else renames.get(self.background, self.background)
        if background is not None and background not in new_names:
            raise ValueError(f"dataset {self.name!r}: background class {background!r} is not among its classes")
        return replace(self, class_names=new_names, videos=videos, background=background)

    def validate(self) -> None:
        """Check the invariants the later stages rely on; raise ValueError naming what is wrong."""
        num_classes = self.num_classes
        repeated = sorted({name for name in self.class_names if self.class_names.count(name) > 1})
        if repeated:
            raise ValueError(f"dataset {self.name!r}: class names repeat: {repeated}")
        for video in self.videos.values():
            if video.num_frames == 0:
                raise ValueError(f"dataset {self.name!r}: video {video.name!r} has no labelled frames")
            if video.labels.min() < 0 or video.labels.max() >= num_classes:
                raise ValueError(f"dataset {self.name!r}: video {video.name!r} has label ids outside 0..{num_classes - 1}")
        for number, split in enumerate(self.splits, start=1):
            unknown = (set(split.train) | set(split.test)) - set(self.videos)
            if unknown:
                raise ValueError(f"dataset {self.name!r} split {number}: unknown videos {sorted(unknown)[:5]}")
            both = sorted(set(split.train) & set(split.test), key=natural_key)
            if both:
                raise ValueError(f"dataset {self.name!r} split {number}: videos on both the train and test side: "
                                 f"{both[:5]}{' ...' if len(both) > 5 else ''}")


def natural_key(text: str):
    """Sort key that orders "P9" before "P10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def labels_from_ranges(ranges, num_frames, path, fill=None):
    """Frame-wise labels from (first, last, label_id, line) ranges, 0-based inclusive.

    Later ranges win where ranges overlap (the next action has begun). Frames no range covers take
    `fill`; without one they are an error naming `path`.
    """
    labels = np.full(num_frames, -1, dtype=np.int64)
    for first, last, label_id, _line in sorted(ranges, key=lambda r: (r[0], r[1])):
        labels[first : last + 1] = label_id
    uncovered = np.flatnonzero(labels < 0)
    if len(uncovered):
        if fill is None:
            raise AnnotationError(path, f"frames {uncovered[0] + 1}..{uncovered[-1] + 1} have no label "
                                        f"({len(uncovered)} uncovered frames)")
        labels[uncovered] = fill
    return labels


def resample_labels(labels: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Labels at `fps_out`: output frame k takes the input frame shown at time k / fps_out, for every
    k / fps_out within the video's duration (len(labels) / fps_in).

    The same rule picks decoded frames in `pipeline.data.frames`, so labels and frames stay aligned.
    """
    if fps_in == fps_out:
        return labels
    return labels[resample_index(len(labels), fps_in, fps_out)]


def resample_index(count: int, fps_in: float, fps_out: float) -> np.ndarray:
    """Which of `count` frames at `fps_in` each frame at `fps_out` shows: frame k of the output is
    input frame floor(k fps_in / fps_out), for every k / fps_out within the input's duration. Labels,
    decoded frames and precomputed features are all resampled by this one rule."""
    if fps_in == fps_out:
        return np.arange(count)
    out = int(np.ceil(count * fps_out / fps_in - 1e-9))
    source = np.floor(np.arange(out) * fps_in / fps_out + 1e-9).astype(np.int64)
    return np.minimum(source, count - 1)
