"""The frame classifier of a dataset read from precomputed features: a linear softmax classifier.

Where a dataset comes with per-frame features instead of videos (`pipeline.data.precomputed`), the
per-split "frame classifier" of the pipeline is a multinomial logistic regression fitted on that
split's training videos, and its logits for every frame of every video of the split go to the same
HDF5 layout as the CNN's (`logits.py`), so the None row, the boundary LSTM and every recurrent run
work unchanged.

Fitting. Frames are sampled evenly over all training videos: every k-th frame of every video, k
the smallest stride that keeps at most `max_frames` frames, from an offset drawn per video from the
seed; consecutive frames are nearly identical, so the sample loses little and bounds memory. The
features are standardised per dimension with the sample's mean and standard deviation, and the
weights found by full-batch L-BFGS on the mean cross-entropy plus `weight_decay` / 2 * |W|^2,
from zero: the same data and configuration give the same classifier, with no randomness beyond the
sampling offsets. Cheap enough (seconds to a few minutes) to need no checkpoint.

Memory. The sample (`max_frames` x D float32, 1.6 GB at 200,000 x 2048) plus one chunk of a video
at a time: the peak does not grow with the dataset (benchmarks/README.md, `features.py`; see
`_pin_mmap_threshold` for what it took).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import Dataset
from ..data.precomputed import FeatureError, FeatureSource, magnitude_outliers
from ..device import select_device
from ..io import save_torch, write_text
from ..options import option
from ..progress import progress_bar
from .logits import LogitsWriter

log = logging.getLogger(__name__)
CHUNK = 1024  # frames per forward pass when writing logits, read into one buffer reused throughout
MMAP_THRESHOLD = 1 << 20  # bytes; see _pin_mmap_threshold


def _pin_mmap_threshold() -> None:
    """Have glibc map every allocation above MMAP_THRESHOLD on its own and unmap it when freed.

    By default glibc raises that threshold to the size of the largest block freed (up to 32 MB),
    after which the per-chunk temporaries of the logits pass came from the heap, interleaved with
    HDF5's small allocations, and the heap fragmented: the step's memory grew by ~12 MB per video
    (20 GB over Breakfast's 1712 videos, benchmarks/features.py). A fixed threshold keeps it flat.
    Elsewhere than glibc this does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


@dataclass
class LinearConfig:
    max_frames: int = option(
        200_000,
        "training frames fitted on, sampled evenly over all training videos (bounds memory)")
    iterations: int = option(200, "L-BFGS iterations")
    weight_decay: float = option(1e-4, "L2 penalty on the weights")
    seed: int = option(0, "picks each training video's sampling offset")
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', ...")


def sample_frames(lengths: list[int], max_frames: int, seed: int) -> list[np.ndarray]:
    """Frames of each video in the fitting sample: every k-th from a seeded offset, k the smallest
    stride keeping at most `max_frames` in all (and at least one frame of every video)."""
    stride = max(1, int(np.ceil(sum(lengths) / max_frames)))
    offsets = np.random.default_rng(seed).integers(0, stride, len(lengths))
    return [np.arange(min(int(offset), length - 1), length, stride) for offset, length in zip(offsets, lengths)]


class LinearClassifier(torch.nn.Module):
    """Standardisation and one linear layer: logits = ((x - mean) / std) W^T + b."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.linear = torch.nn.Linear(dim, num_classes)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, x):  # (N, D) -> (N, C)
        return self.linear((x - self.mean) / self.std)


def _moments(x: torch.Tensor, rows: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation of x (N, D), in float64 over blocks of rows: no
    temporary as large as x (the sample is most of the step's memory)."""
    total = x.new_zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for block in x.split(rows):
        block = block.double()
        total += block.sum(0)
        squares += block.square().sum(0)
    count = max(1, x.shape[0])
    mean = total / count
    variance = (squares / count - mean.square()) * count / max(1, count - 1)
    return mean.to(x.dtype), variance.clamp_min(0).sqrt().to(x.dtype)


def fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, config: LinearConfig) -> tuple[LinearClassifier, dict]:
    """Fit on features x (N, D) and labels y (N,); returns the model and a summary. x is
    standardised in place (no second copy of the sample)."""
    model = LinearClassifier(x.shape[1], num_classes).to(x.device)
    mean, std = _moments(x)
    model.mean.copy_(mean)
    model.std.copy_(std.clamp_min(1e-6))
    x.sub_(model.mean).div_(model.std)
    weight, bias = model.linear.weight, model.linear.bias
    optimiser = torch.optim.LBFGS([weight, bias], lr=1, max_iter=config.iterations, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(torch.addmm(bias, x, weight.t()), y) + 0.5 * config.weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        logits = torch.addmm(bias, x, weight.t())
        loss = float(F.cross_entropy(logits, y))
        accuracy = float((logits.argmax(1) == y).float().mean())
    if not np.isfinite(loss):
        raise FloatingPointError(f"the linear classifier's loss is {loss}: the features hold values too large to "
                                 "fit on (run `ddlstm check-features` on the dataset)")
    steps = optimiser.state[weight].get("n_iter", 0)
    return model, {"train_loss": loss, "train_accuracy": accuracy, "iterations": int(steps)}


@torch.no_grad()
def linear_logits(model: LinearClassifier, read, frames: int, device, num_classes: int | None = None) -> np.ndarray:
    """(frames, C) float32 logits of one video, its features read `CHUNK` frames at a time by
    `read(frame indices) -> (n, D) float32` (so a video's features are never all in memory): the one
    computation of the logits, here and in `pipeline.inference`. `model` may be any module or function
    of (n, D) features given `num_classes`."""
    logits = np.empty((frames, num_classes or model.linear.out_features), np.float32)
    for start in range(0, frames, CHUNK):
        index = np.arange(start, min(start + CHUNK, frames))
        logits[index] = model(torch.from_numpy(read(index)).to(device)).float().cpu().numpy()
    return logits


def training_sample(dataset: Dataset, split: int, source: FeatureSource, max_frames: int,
                    seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """The fitting sample of `split`'s training videos: features (n, D) float32 and labels (n,), at
    most `max_frames` frames (`sample_frames`); an array whose magnitude is far from the others' is
    an error naming it (a foreign array would skew the standardisation of every video)."""
    train = list(dataset.split(split).train)
    picks = sample_frames([source.num_frames(name) for name in train], max_frames, seed)
    bar = progress_bar(len(train), f"{dataset.name} split {split}: read training sample")
    sample = np.empty((sum(len(p) for p in picks), source.array(train[0]).dim), np.float32)  # filled in place
    y = torch.from_numpy(np.concatenate([source.labels(name)[frames] for name, frames in zip(train, picks)]))
    start = 0
    scales = {}  # root mean square of each video's sampled frames
    for name, frames in zip(train, picks):
        rows = source.read(name, frames, sample[start:start + len(frames)])  # refuses NaN / inf, naming the file
        scales[str(source.array(name).path)] = float(np.sqrt(np.square(rows, dtype=np.float64).mean()))
        start += len(frames)
        bar.update(1)
    bar.close()
    problems = magnitude_outliers(scales, f"{dataset.name} split {split}'s training videos")
    if problems:
        raise FeatureError("; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    return sample, y


def write_split_logits(classify, num_classes: int, dataset: Dataset, split: int, source: FeatureSource,
                       output: str | Path, description: dict, device) -> tuple[int, int]:
    """The logits of every video of `split` by `classify` ((n, D) features -> (n, C) logits, a torch
    module or function on `device`) to the HDF5 file `output`; returns (correct, total) test frames."""
    sides = dataset.split(split)
    correct = total = 0
    bar = progress_bar(len(sides.train) + len(sides.test), f"{dataset.name} split {split}: logits")
    features = np.empty((CHUNK, source.dim), np.float32)  # one chunk of a video, reused throughout
    with LogitsWriter(output, dataset.name, split, source.fps, dataset.class_names, description,
                      dataset.background) as writer:
        for subset, names in (("train", sides.train), ("test", sides.test)):
            for name in names:
                labels = source.labels(name)
                logits = linear_logits(classify, lambda frames, name=name: source.read(name, frames,
                                                                                      features[:len(frames)]),
                                       len(labels), device, num_classes)
                writer.add(name, subset, logits, labels, participant=dataset.videos[name].participant)
                if subset == "test":
                    correct += int((logits.argmax(1) == labels).sum())
                    total += len(labels)
                bar.update(1)
    bar.close()
    return correct, total


def train_and_extract(dataset: Dataset, split: int, source: FeatureSource, config: LinearConfig,
                      output: str | Path, work_dir: str | Path) -> dict:
    """Fit on `split`'s training videos, then write the logits of all its videos to `output`.

    `work_dir` receives model.pt (the classifier) and metrics.json (sample size, losses, accuracy
    on the training sample and on every test frame, seconds). Returns the metrics.
    """
    started = time.monotonic()
    _pin_mmap_threshold()
    device = select_device(config.device)
    work_dir = Path(work_dir)
    train = list(dataset.split(split).train)
    sample, y = training_sample(dataset, split, source, config.max_frames, config.seed)
    sample_frames_count = len(sample)
    x, y = torch.from_numpy(sample).to(device), y.to(device)
    del sample
    log.info("fitting on %d frames x %d dimensions of %d training videos", len(x), x.shape[1], len(train))
    model, metrics = fit_linear(x, y, dataset.num_classes, config)
    del x, y
    model.eval()
    description = {"classifier": "linear", "features": str(Path(dataset.videos[train[0]].features_path).parent),
                   "dim": int(source.dim), "trained_on": f"{dataset.name} split {split}", "config": asdict(config)}
    correct, total = write_split_logits(model, dataset.num_classes, dataset, split, source, output, description,
                                        device)
    metrics.update({"dataset": dataset.name, "split": split, "sample_frames": sample_frames_count,
                    "dim": int(source.dim), "test_accuracy": correct / max(1, total), "test_frames": total,
                    "seconds": round(time.monotonic() - started, 2)})
    save_torch({"model": model.state_dict(), "class_names": dataset.class_names, "description": description},
               work_dir / "model.pt")
    write_text(work_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    log.info("linear classifier %s split %d: %s", dataset.name, split, metrics)
    return metrics
