"""Labelled frames of one dataset split, read from the frame stores in batches ready for the network,
and how those batches reach it.

`SplitFrames` pairs each video of a split with its frame store and its labels (at the stores'
frame rate) and checks they agree frame for frame. `Preprocess` turns a batch of uint8 frames
into the network's input: training takes a random square crop of 70-100% of the frame's area,
resized to `input_size`, and a random horizontal flip; evaluation the central `input_size` square
(TSN's 224 of 256), or the central square of the short side resized up where the frame is smaller.
Both normalise with the backbone's mean and std.

On the way to the network (fine-tuning and extraction alike): `BatchLoader` reads and
preprocesses batches ahead in worker processes (`workers`, 0 on the CPU by default: there the
network already keeps every core busy) into pinned memory; a batch is the same function of its
index in a worker as in this process (`TrainingBatches`: of (seed, epoch, step)), so results do not
depend on the number of workers. On CUDA the network and its inputs are channels_last
(`prepare_network`, `to_network`) and it runs under bfloat16 autocast (`precision`, `autocast`).
"""

from __future__ import annotations

import os
import queue
import threading
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

    def forget_stores(self) -> None:
        """Drop the open stores without closing them (a forked process's copies of its parent's)."""
        self._stores = {}

    def __getstate__(self) -> dict:  # pickled for a loader process: without open stores
        return {**self.__dict__, "_stores": {}}


class Preprocess:
    """uint8 frames (N, H, W, 3) -> the network's float input (N, 3, input_size, input_size).

    Training: `preprocess(frames, rng)`, random crops and flips drawn from `rng`. Evaluation:
    `preprocess(frames)`, which is `normalise(central_crop(frames))`; the two halves apart let the
    uint8 crop travel to the device (a quarter of the float's bytes) and be normalised there.
    """

    def __init__(self, input_size: int, mean, std, train: bool, min_area: float = 0.7):
        self.input_size = input_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.inverse_std = 1 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.train = train
        self.min_area = min_area

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        if not self.train:
            return self.normalise(self.central_crop(frames))
        n, height, width = frames.shape[:3]
        side = min(height, width)
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

    def central_crop(self, frames: np.ndarray, compact: bool = False) -> torch.Tensor:
        """The central `input_size` square (or the short side's, where the frame is smaller) of each
        frame, still uint8: (N, 3, c, c), a channels-last view of the frames (`compact`: of a copy
        holding the crops only, to send to another process). Cropping before converting: only the
        pixels the network sees become floats."""
        height, width = frames.shape[1:3]
        crop = min(height, width, self.input_size)
        top, left = (height - crop) // 2, (width - crop) // 2
        crops = frames[:, top : top + crop, left : left + crop]
        return torch.from_numpy(np.ascontiguousarray(crops) if compact else crops).permute(0, 3, 1, 2)

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        """Central crops (uint8, on any device) -> the network's input on that device: float,
        resized up to `input_size` where smaller, less the mean, over the std."""
        x = self._resize(crops.float())
        return x.sub_(self.mean.to(x.device)).mul_(self.inverse_std.to(x.device))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.input_size, self.input_size):
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                             antialias=x.shape[-1] > self.input_size)


# -- how batches reach the network: precision, memory format, loading ahead in worker processes ------

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_HELP = ("the network's arithmetic: 'bf16' runs the forward (and backward) under bfloat16 autocast, with "
                  "the weights, the loss and the optimiser step in float32; 'auto' is bf16 on a CUDA device that "
                  "supports it and fp32 elsewhere (the CPU)")
WORKERS_HELP = ("processes that read and preprocess frame batches ahead of the network (0: in this process); "
                "None: 0 on the CPU, where the network already keeps every core busy, and on CUDA one fewer "
                "than the CPUs this job may use (at least 1, at most 8)")
PREFETCH = 2  # batches each worker prepares ahead


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for the configured `precision` on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    try:
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # an older signature
        supported = torch.cuda.is_bf16_supported()
    return "bf16" if supported else "fp32"


def autocast(device: torch.device, precision: str):
    """The context the network runs in: bfloat16 autocast for 'bf16', nothing for 'fp32'."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """The number of loader processes for the configured `workers` (None: by device) on `device`."""
    if workers is None:
        return 0 if device.type != "cuda" else max(1, min(8, available_cpus() - 1))
    if workers < 0:
        raise ValueError(f"workers {workers}: 0 (load in this process) or more")
    return workers


def prepare_network(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The network in the memory format it runs in on `device`: channels_last on CUDA (cuDNN's
    fastest layout for these convolutions, with bf16 above all), unchanged elsewhere. In place."""
    if device.type == "cuda":
        first = next((p for p in model.parameters() if p.dim() == 4), None)
        if first is not None and not first.is_contiguous(memory_format=torch.channels_last):
            model.to(memory_format=torch.channels_last)
    return model


def to_network(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor of images (N, 3, H, W) on `device` in the network's memory format (see
    `prepare_network`); from pinned memory the copy does not wait for the host."""
    if device.type == "cuda":
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device)


class TrainingBatches(torch.utils.data.Dataset):
    """Fine-tuning's step `step` -> (step, inputs, labels, dropout seed), a function of (seed,
    epoch, step in epoch) alone, whichever process computes it: the epoch's order of the training
    rows is a permutation drawn from (seed, epoch), the step's crops, flips and dropout seed come
    from a generator of (seed, epoch, step in epoch), the dropout seed drawn first."""

    def __init__(self, frames: SplitFrames, preprocess: Preprocess, rows: np.ndarray, per_epoch: int,
                 batch_size: int, seed: int):
        self.frames, self.preprocess, self.rows = frames, preprocess, rows
        self.per_epoch, self.batch_size, self.seed = per_epoch, batch_size, seed
        self.steps_per_epoch = per_epoch // batch_size
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its order): one epoch's kept

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
            self._order = (epoch, permutation[: self.per_epoch])
        return self._order[1]

    def __getitem__(self, step: int):
        epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
        chosen = self.order(epoch)[step_in_epoch * self.batch_size : (step_in_epoch + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, step_in_epoch])
        dropout_seed = int(rng.integers(2**62))
        images, labels = self.frames.read(self.rows[chosen])
        return step, self.preprocess(images, rng), torch.from_numpy(labels), dropout_seed


class EvaluationBatches(torch.utils.data.Dataset):
    """Batch i -> (central crops, uint8 (N, 3, c, c), labels) of the frames at (video, frame)
    rows `batches[i]`; normalised where the network runs (`Preprocess.normalise`)."""

    def __init__(self, frames: SplitFrames, preprocess: Preprocess, batches: list[np.ndarray], compact: bool = False):
        self.frames, self.preprocess, self.batches, self.compact = frames, preprocess, batches, compact

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        images, labels = self.frames.read(self.batches[index])
        return self.preprocess.central_crop(images, compact=self.compact), torch.from_numpy(labels)


def _unchanged(item):
    return item


def _worker_started(_worker_id: int) -> None:
    """A loader process opens its own frame stores (HDF5 handles are not shared across a fork)."""
    frames = getattr(torch.utils.data.get_worker_info().dataset, "frames", None)
    if isinstance(frames, SplitFrames):
        frames.forget_stores()


class BatchLoader:
    """`dataset[i]` for each i of `indices`, in order, prepared `PREFETCH` batches per worker ahead
    by `workers` processes (torch's DataLoader), into pinned memory with `pin_memory`; with
    `workers=0` in this process when asked, as before (`thread`: in a background thread of this
    process, one batch ahead). Each `iter()` is one pass (`persistent`: the same processes serve every
    pass). `close()`, or leaving the `with` block, ends the processes, also after an error."""

    def __init__(self, dataset, indices, workers: int = 0, pin_memory: bool = False, persistent: bool = False,
                 thread: bool = False):
        self.dataset, self.indices, self.thread = dataset, indices, thread
        self._loader = None
        self._live = None  # the DataLoader iterator whose processes are running
        if workers > 0 and len(indices) > 0:
            self._loader = torch.utils.data.DataLoader(
                dataset, batch_size=None, sampler=indices, num_workers=min(workers, len(indices)),
                collate_fn=_unchanged, pin_memory=pin_memory, prefetch_factor=PREFETCH,
                persistent_workers=persistent, worker_init_fn=_worker_started,
                generator=torch.Generator())  # its own seed generator: the global torch RNG is left alone

    def __iter__(self):
        if self._loader is None:
            items = (self.dataset[i] for i in self.indices)
            return _prefetched(items) if self.thread else items
        self._live = iter(self._loader)
        return self._live

    def close(self) -> None:
        if self._live is not None and hasattr(self._live, "_shutdown_workers"):
            self._live._shutdown_workers()
        self._live = None
        if self._loader is not None:
            self._loader._iterator = None  # a persistent loader keeps its iterator: not to be reused

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _prefetched(generator, depth: int = 2):
    """Run `generator` in a thread, `depth` items ahead; its exceptions surface here."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in generator:
                items.put(item)
            items.put(done)
        except BaseException as error:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            items.put(error)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()
