"""What a recurrent run's model reads and is scored against: where each dataset's labels and inputs sit
in the concatenated vectors (`Layout`), and the training batches of windows (`WindowSampler`).

Labels (the paper's concatenated label vectors, Fig. 1): dataset i owns a block of the output
vector. Inputs (`input_layout`): dataset i's standardised logits fill its own block of the input
vector, zeros elsewhere ("blocks"), or every dataset's fill the same leading columns, zero-padded to
the larger ("shared"); the two boundary features follow, shared by all datasets.

Batches: every batch holds each dataset's windows in one contiguous block, in dataset order
(`batch_sizes`), which is how DDBN tells its domains apart.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import INPUT_LAYOUTS, RecurrentConfig
from .sequences import SplitSequences
from .windows import gather_windows, sample_ends, stack_by_video, window_targets


class Layout:
    """Where each dataset's labels and logits sit in the concatenated vectors."""

    def __init__(self, splits: list[SplitSequences], input_layout: str = "blocks"):
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, not {input_layout!r}")
        self.splits = splits
        sizes = [s.num_classes for s in splits]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        self.num_labels = int(sum(sizes))
        self.input_offsets = self.offsets if input_layout == "blocks" else [0] * len(splits)
        self.logit_columns = self.num_labels if input_layout == "blocks" else max(sizes)
        self.boundary = all(s.has_boundary for s in splits)
        self.input_size = self.logit_columns + (2 if self.boundary else 0)

    def features(self, index: int, sequence) -> np.ndarray:
        split = self.splits[index]
        out = np.zeros((len(sequence.labels), self.input_size), np.float32)
        start = self.input_offsets[index]
        out[:, start : start + split.num_classes] = split.standardised(sequence)
        if self.boundary:
            out[:, self.logit_columns :] = sequence.boundary
        return out

    def block(self, index: int) -> slice:
        return slice(self.offsets[index], self.offsets[index] + self.splits[index].num_classes)


def batch_sizes(config: RecurrentConfig, iteration: int) -> list[int]:
    """Windows of each dataset in the batch of `iteration`."""
    if config.protocol == "single":
        return [config.batch_size]
    if config.protocol == "joint":
        first = round(config.batch_size * config.domain_share)
        return [first, config.batch_size - first]
    phase = 0 if iteration < config.iterations else 1
    return [config.batch_size if d == phase else 0 for d in range(2)]


class WindowSampler:
    """Training batches of one run: (x, mask, targets, domain_sizes) for an iteration."""

    def __init__(self, layout: Layout, config: RecurrentConfig):
        self.layout = layout
        self.config = config
        self.videos = []  # per dataset: (features, global labels) of each training video
        for index, split in enumerate(layout.splits):
            self.videos.append([(layout.features(index, s), s.labels + layout.offsets[index])
                                for s in split.subset("train")])

    def batch(self, iteration: int):
        config = self.config
        rng = np.random.default_rng([config.seed, iteration])
        xs, masks, targets = [], [], []
        sizes = batch_sizes(config, iteration)
        for videos, count in zip(self.videos, sizes):
            if count == 0:
                continue
            picks, ends = sample_ends([len(labels) for _, labels in videos], count, config.lookahead_frames, rng)

            def take(video, video_ends, videos=videos):
                features, labels = videos[video]
                x, mask = gather_windows(features, video_ends, config.history, config.short_windows)
                return x, mask, window_targets(labels, video_ends, config.history, config.lookahead_frames,
                                               config.short_windows)

            x, mask, target = stack_by_video(picks, ends, take)
            xs.append(x)
            masks.append(mask)
            targets.append(target)
        return (torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(masks)),
                torch.from_numpy(np.concatenate(targets)), sizes)
