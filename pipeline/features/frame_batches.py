"""Labelled frames of one dataset split, read from the frame stores in batches ready for the network.

`SplitFrames` pairs each video of a split with its frame store and its labels (at the stores'
frame rate) and checks they agree frame for frame. `Preprocess` turns a batch of uint8 frames
into the network's input: training takes a random square crop of 70-100% of the frame's area,
resized to `input_size`, and a random horizontal flip; evaluation the central `input_size` square
(TSN's 224 of 256), or the central square of the short side resized up where the frame is smaller.
Both normalise with the backbone's mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.frame_store import FrameStore


@dataclass
class StoredVideo:
    name: str
    store_path: Path
    labels: np.ndarray  # (T,) class ids
    subset: str  # "train" or "test"
    participant: str


class SplitFrames:
    """The videos of split `split` (1-based) of `dataset`, with stores `<frames_dir>/<video>.<store_format>`."""

    def __init__(self, dataset, split: int, frames_dir: str | Path, store_format: str = "npy", fps: float | None = None):
        dataset = dataset.resampled(fps)
        self.dataset = dataset
        self.split = split
        self.class_names = list(dataset.class_names)
        frames_dir = Path(frames_dir)
        chosen = dataset.split(split)
        self.videos: list[StoredVideo] = []
        for subset, names in (("train", chosen.train), ("test", chosen.test)):
            for name in names:
                video = dataset.videos[name]
                store = frames_dir / f"{name}.{store_format}"
                self.videos.append(StoredVideo(name, store, video.labels, subset, video.participant))
        self._stores: dict[Path, FrameStore] = {}

    def check(self) -> None:
        """Every store exists and holds exactly one frame per label."""
        for video in self.videos:
            store = self.store(video)
            if len(store) != len(video.labels):
                raise ValueError(f"frame store {video.store_path} has {len(store)} frames but video {video.name!r} "
                                 f"has {len(video.labels)} labels at {self.dataset.fps:g} fps: decode the frames "
                                 "with the same fps as this step uses")

    def store(self, video: StoredVideo) -> FrameStore:
        if video.store_path not in self._stores:
            self._stores[video.store_path] = FrameStore(video.store_path)
        return self._stores[video.store_path]

    def frame_index(self, subset: str, stride: int = 1) -> np.ndarray:
        """(N, 2) rows of (video number in `self.videos`, frame), every `stride`-th frame of `subset`."""
        rows = [np.stack([np.full(len(range(0, len(v.labels), stride)), i), np.arange(0, len(v.labels), stride)], 1)
                for i, v in enumerate(self.videos) if v.subset == subset]
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 frames (N, H, W, 3) and labels (N,) for (video, frame) rows, read video by video."""
        frames, labels = None, np.empty(len(rows), np.int64)
        for number in np.unique(rows[:, 0]):
            where = np.flatnonzero(rows[:, 0] == number)
            video = self.videos[number]
            chunk = self.store(video).read(rows[where, 1])
            if frames is None:
                frames = np.empty((len(rows), *chunk.shape[1:]), np.uint8)
            frames[where] = chunk
            labels[where] = video.labels[rows[where, 1]]
        return frames, labels

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


class Preprocess:
    def __init__(self, input_size: int, mean, std, train: bool, min_area: float = 0.7):
        self.input_size = input_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.inverse_std = 1 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.train = train
        self.min_area = min_area

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        n, height, width = frames.shape[:3]
        side = min(height, width)
        if not self.train:
            # Crop before converting: only the pixels the network sees become floats.
            crop = min(side, self.input_size)
            top, left = (height - crop) // 2, (width - crop) // 2
            x = torch.from_numpy(frames[:, top : top + crop, left : left + crop]).permute(0, 3, 1, 2).float()
            return self._resize(x).sub_(self.mean).mul_(self.inverse_std)
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (N, 3, H, W), 0..255
        sides = np.floor(side * np.sqrt(rng.uniform(self.min_area, 1.0, n))).astype(int)
        tops = (rng.random(n) * (height - sides + 1)).astype(int)
        lefts = (rng.random(n) * (width - sides + 1)).astype(int)
        flips = rng.random(n) < 0.5
        out = torch.empty(n, 3, self.input_size, self.input_size)
        for k in range(n):
            crop = self._resize(x[k : k + 1, :, tops[k] : tops[k] + sides[k], lefts[k] : lefts[k] + sides[k]])
            out[k] = crop[0].flip(-1) if flips[k] else crop[0]
        return out.sub_(self.mean).mul_(self.inverse_std)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.input_size, self.input_size):
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                             antialias=x.shape[-1] > self.input_size)
