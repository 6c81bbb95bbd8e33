"""What a recurrent run's model reads and is scored against: where each dataset's labels and inputs sit
in the concatenated vectors (`Layout`), and the training batches of windows (`WindowSampler`).

Labels (the paper's concatenated label vectors, Fig. 1): dataset i owns a block of the output
vector. Inputs (`inputs`): each dataset's standardised frame-classifier logits ("logits", the
paper's), or, for a dataset read from precomputed features, its standardised feature vectors
("features": `FeatureInput`; a dataset from videos still gives its logits). Where they sit
(`input_layout`): dataset i's vectors fill its own block of the input, zeros elsewhere ("blocks"),
or every dataset's fill the same leading columns, zero-padded to the widest ("shared"); the two
boundary features follow, shared by all datasets.

Memory. Logits are small (C <= ~100 per frame) and held in memory; features are not (Breakfast's
I3D release is ~29 GB): they are memory-mapped and read a window's rows at a time in training, a
video at a time in evaluation.

Batches: every batch holds each dataset's windows in one contiguous block, in dataset order
(`batch_sizes`), which is how DDBN tells its domains apart.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.precomputed import FeatureSource
from .config import INPUT_LAYOUTS, RecurrentConfig
from .sequences import Sequence, SplitSequences
from .windows import gather_windows, sample_ends, stack_by_video, window_index, window_targets

STATISTICS_FRAMES = 100_000  # training frames the feature standardisation is estimated from


class FeatureInput:
    """A dataset's precomputed features as the recurrent input: standardised per dimension with the
    mean and standard deviation of an evenly spread sample of the split's training frames (every
    k-th frame of every training video, as the linear classifier samples them)."""

    def __init__(self, source: FeatureSource, split: SplitSequences, max_frames: int = STATISTICS_FRAMES):
        self.source = source
        for sequence in split.sequences:  # the logits file and the features describe the same frames
            found = source.num_frames(sequence.name) if sequence.name in source.dataset.videos else None
            if found != len(sequence.labels):
                raise ValueError(f"{split.dataset} video {sequence.name!r}: {len(sequence.labels)} frames in the logits "
                                 f"file, {found} in its features at {source.fps:g} fps: not the same dataset and rate?")
        train = [s.name for s in split.subset("train")]
        lengths = [source.num_frames(name) for name in train]
        stride = max(1, int(np.ceil(sum(lengths) / max_frames)))
        # mean and sum of squared deviations merged video by video (Chan et al.): no E[x^2] - E[x]^2
        count, mean, deviations = 0, 0.0, 0.0
        for name, length in zip(train, lengths):
            rows = source.read(name, np.arange(0, length, stride)).astype(np.float64)
            rows_mean = rows.mean(0)
            merged = count + len(rows)
            delta = rows_mean - mean
            deviations = deviations + ((rows - rows_mean) ** 2).sum(0) + delta**2 * count * len(rows) / merged
            mean = mean + delta * len(rows) / merged
            count = merged
        self.mean = np.asarray(mean, np.float32)
        self.std = np.maximum(np.sqrt(deviations / count), 1e-6).astype(np.float32)
        self.dim = len(self.mean)

    def read(self, name: str, frames: np.ndarray | None = None) -> np.ndarray:
        """(frames, D) standardised float32 of a video (every frame when `frames` is None)."""
        return (self.source.read(name, frames) - self.mean) / self.std


class Layout:
    """Where each dataset's labels and inputs sit in the concatenated vectors; `feature_inputs` (one per
    split, None for a dataset that feeds its logits) switches a dataset to its features."""

    def __init__(self, splits: list[SplitSequences], input_layout: str = "blocks",
                 feature_inputs: list[FeatureInput | None] | None = None):
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, not {input_layout!r}")
        self.splits = splits
        self.feature_inputs = list(feature_inputs) if feature_inputs is not None else [None] * len(splits)
        sizes = [s.num_classes for s in splits]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        self.num_labels = int(sum(sizes))
        self.widths = [s.num_classes if f is None else f.dim for s, f in zip(splits, self.feature_inputs)]
        if input_layout == "blocks":
            self.input_offsets = np.concatenate([[0], np.cumsum(self.widths)[:-1]]).astype(int).tolist()
            self.logit_columns = int(sum(self.widths))
        else:
            self.input_offsets = [0] * len(splits)
            self.logit_columns = max(self.widths)
        self.boundary = all(s.has_boundary for s in splits)
        self.input_size = self.logit_columns + (2 if self.boundary else 0)

    def _values(self, index: int, sequence: Sequence, frames: np.ndarray | None = None) -> np.ndarray:
        """The dataset's own input vectors of the frames (all when None): logits or features."""
        features = self.feature_inputs[index]
        if features is not None:
            return features.read(sequence.name, frames)
        values = self.splits[index].standardised(sequence)
        return values if frames is None else values[frames]

    def features(self, index: int, sequence: Sequence) -> np.ndarray:
        """(T, input_size) inputs of every frame of one video."""
        out = np.zeros((len(sequence.labels), self.input_size), np.float32)
        start = self.input_offsets[index]
        out[:, start : start + self.widths[index]] = self._values(index, sequence)
        if self.boundary:
            out[:, self.logit_columns :] = sequence.boundary
        return out

    def windows(self, index: int, sequence: Sequence, ends: np.ndarray, history: int,
                align: str = "end") -> tuple[np.ndarray, np.ndarray]:
        """(N, history, input_size) inputs of the windows ending at `ends` (zeros where masked) and their
        mask, reading only the frames the windows hold (`gather_windows` of `features`, without them)."""
        index_, mask = window_index(ends, history, len(sequence.labels), align)
        needed = np.unique(index_[mask])
        out = np.zeros((*index_.shape, self.input_size), np.float32)
        if len(needed):
            position = np.searchsorted(needed, index_[mask])
            start = self.input_offsets[index]
            out[mask, start : start + self.widths[index]] = self._values(index, sequence, needed)[position]
            if self.boundary:
                out[mask, self.logit_columns :] = sequence.boundary[needed][position]
        return out, mask

    def block(self, index: int) -> slice:
        return slice(self.offsets[index], self.offsets[index] + self.splits[index].num_classes)


def batch_sizes(config: RecurrentConfig, iteration: int, datasets: int = 2) -> list[int]:
    """Windows of each dataset in the batch of `iteration`: a pair shares it by `domain_share`, a group of
    three or more datasets evenly (the first ones take the remainder)."""
    if config.protocol == "single":
        return [config.batch_size]
    if config.protocol == "joint":
        if config.adaptive_share:
            raise ValueError("domain_share 'adaptive': the batch makeup comes from the run's AdaptiveShare (makeup.py)")
        if datasets == 2:
            first = round(config.batch_size * config.domain_share)
            return [first, config.batch_size - first]
        base, extra = divmod(config.batch_size, datasets)
        return [base + (1 if d < extra else 0) for d in range(datasets)]
    phase = 0 if iteration < config.iterations else 1
    return [config.batch_size if d == phase else 0 for d in range(2)]


class WindowSampler:
    """Training batches of one run: (x, mask, targets, domain_sizes) for an iteration; with `makeup` (an
    `AdaptiveShare`) the windows of each dataset are its current ones instead of `batch_sizes`."""

    def __init__(self, layout: Layout, config: RecurrentConfig, makeup=None):
        self.layout = layout
        self.config = config
        self.makeup = makeup
        # per dataset, each training video: (its inputs in memory, or None to read its windows from the
        # features as needed; its labels in the concatenated label vector; the sequence)
        self.videos = []
        for index, split in enumerate(layout.splits):
            lazy = layout.feature_inputs[index] is not None
            self.videos.append([(None if lazy else layout.features(index, s), s.labels + layout.offsets[index], s)
                                for s in split.subset("train")])

    def batch(self, iteration: int):
        config = self.config
        rng = np.random.default_rng([config.seed, iteration])
        xs, masks, targets = [], [], []
        sizes = self.makeup.sizes() if self.makeup is not None else batch_sizes(config, iteration, len(self.videos))
        for index, (videos, count) in enumerate(zip(self.videos, sizes)):
            if count == 0:
                continue
            picks, ends = sample_ends([len(labels) for _, labels, _ in videos], count, config.lookahead_frames, rng)

            def take(video, video_ends, videos=videos, index=index):
                features, labels, sequence = videos[video]
                if features is None:
                    x, mask = self.layout.windows(index, sequence, video_ends, config.history, config.short_windows)
                else:
                    x, mask = gather_windows(features, video_ends, config.history, config.short_windows)
                return x, mask, window_targets(labels, video_ends, config.history, config.lookahead_frames,
                                               config.short_windows)

            x, mask, target = stack_by_video(picks, ends, take)
            xs.append(x)
            masks.append(mask)
            targets.append(target)
        return (torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(masks)),
                torch.from_numpy(np.concatenate(targets)), sizes)
