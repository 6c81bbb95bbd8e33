"""The recurrent stage's data: one dataset split's per-frame features and labels, in memory.

Read from the HDF5 files of `pipeline.features.logits`: the frame classifier's logits, plus the
boundary LSTM's output where present. Features are standardised per dimension with the training
videos' mean and standard deviation (the logits' scale differs between datasets and classifiers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..features.logits import Logits


@dataclass
class Sequence:
    name: str
    subset: str  # "train" or "test"
    logits: np.ndarray  # (T, C) float32
    labels: np.ndarray  # (T,) int64
    boundary: np.ndarray | None = None  # (T, 2) float32
    participant: str = ""  # the person recorded (the video's name when the file does not say)


@dataclass
class SplitSequences:
    dataset: str
    split: int
    fps: float
    class_names: list[str]
    background: str | None
    sequences: list[Sequence]
    mean: np.ndarray = field(init=False)  # (C,) of the training logits
    std: np.ndarray = field(init=False)

    def __post_init__(self):
        train = [s.logits for s in self.sequences if s.subset == "train"]
        if not train:
            raise ValueError(f"dataset {self.dataset!r} split {self.split} has no training videos")
        stacked = np.concatenate(train)
        self.mean = stacked.mean(0)
        self.std = np.maximum(stacked.std(0), 1e-6)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_boundary(self) -> bool:
        return all(s.boundary is not None for s in self.sequences)

    @property
    def background_id(self) -> int | None:
        return None if self.background is None else self.class_names.index(self.background)

    def subset(self, subset: str) -> list[Sequence]:
        return [s for s in self.sequences if s.subset == subset]

    def standardised(self, sequence: Sequence) -> np.ndarray:
        return ((sequence.logits - self.mean) / self.std).astype(np.float32)


def load_split(path: str | Path) -> SplitSequences:
    """Every video of one logits file (train and test)."""
    with Logits(path) as source:
        sequences = [Sequence(name, source.subset(name), source.logits(name), source.labels(name),
                              source.boundary(name), source.participant(name)) for name in source.names()]
        return SplitSequences(source.dataset, source.split, source.fps, source.class_names, source.background,
                              sequences)
