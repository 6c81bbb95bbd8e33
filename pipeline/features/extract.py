"""Logit extraction: every frame of every video of a split (train and test sides) through the
fine-tuned classifier, into that split's HDF5 logits file (layout in `logits.py`).

Batches of `batch_size` frames, never spanning two videos (each video's from its frame 0). Each is
read and centrally cropped (still uint8) ahead by `workers` loader processes, into pinned memory
on CUDA; there the crops are normalised on the device, and the network runs channels_last under
bfloat16 autocast (`precision: auto`), its logits written as float32. On the CPU the defaults are
as before: no worker processes (the network already keeps every core busy; a second thread only
competed with it, measured slower on 2 cores) and float32.

`frame_logits` is one batch of this computation for any caller (the `predict` command): given the
frames of an extraction batch, the same device and the same precision, it returns exactly the rows
extraction wrote for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..device import select_device
from ..progress import progress_bar
from .finetune import load_classifier, network_logits
from .frame_batches import (
    BatchLoader,
    EvaluationBatches,
    Preprocess,
    SplitFrames,
    prepare_network,
    resolve_precision,
    resolve_workers,
)
from .logits import LogitsWriter


def frame_logits(model, preprocess: Preprocess, frames: np.ndarray, device, precision: str = "fp32") -> np.ndarray:
    """(N, C) float32 logits of uint8 frames (N, H, W, 3), computed as extraction computes each batch:
    the evaluation crop (`preprocess`, made with `train=False`), normalised on `device`, through
    `model` (in evaluation mode) in `precision` ('fp32', 'bf16', or 'auto' as in extraction). Rows
    equal extraction's bit for bit when the frames are one of its batches (`batch_size` frames of
    one video from its frame 0) on the same kind of device; other batch sizes may differ in the
    last bits."""
    device = torch.device(device)
    crops = preprocess.central_crop(frames)
    return network_logits(model, preprocess, crops, device, resolve_precision(precision, device)).cpu().numpy()


def extraction_batches(frames: SplitFrames, batch_size: int) -> list[tuple[int, bool, np.ndarray]]:
    """(video number, whether it is the video's last batch, (video, frame) rows) per batch."""
    plan = []
    for number, video in enumerate(frames.videos):
        count = len(video.labels)
        for start in range(0, count, batch_size):
            index = np.arange(start, min(count, start + batch_size))
            plan.append((number, start + batch_size >= count, np.stack([np.full(len(index), number), index], 1)))
    return plan


def extract_logits(frames: SplitFrames, model_path: str | Path, output: str | Path, batch_size: int = 64,
                   device: str = "auto", precision: str = "auto", workers: int | None = None) -> Path:
    """Write the logits of every frame of `frames` with the classifier at `model_path` to `output`.

    `precision`: 'auto' (bf16 on CUDA, fp32 on the CPU), 'fp32' or 'bf16'; `workers`: loader
    processes (None: 0 on the CPU, by the CPUs available on CUDA). Both are recorded in the file's
    description of the model (attribute `model`: `precision`)."""
    frames.check()
    device = select_device(device)
    precision = resolve_precision(precision, device)
    workers = resolve_workers(workers, device)
    model, saved = load_classifier(model_path, device, frames.dataset.name)  # a joint one: this dataset's part
    prepare_network(model, device)
    if saved["class_names"] != frames.class_names:
        raise ValueError(f"{model_path} was trained on classes of dataset {saved['dataset']!r}, not those of "
                         f"{frames.dataset.name!r}")
    preprocess = Preprocess(saved["input_size"], model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
    description = {"backbone": saved["backbone"], "backbone_args": saved["backbone_args"],
                   "input_size": saved["input_size"], "checkpoint": str(model_path),
                   "trained_on": saved.get("trained_on", f"{saved['dataset']} split {saved['split']}"), "precision": precision,
                   "batch_size": batch_size}
    plan = extraction_batches(frames, batch_size)
    batches = EvaluationBatches(frames, preprocess, [rows for _, _, rows in plan], compact=workers > 0)
    total = sum(len(v.labels) for v in frames.videos)
    bar = progress_bar(total, f"extract {frames.dataset.name} split {frames.split}")
    chunks: list[np.ndarray] = []
    cuda = device.type == "cuda"
    # Without workers on CUDA, a thread of this process prepares the next batch while the GPU runs.
    with (LogitsWriter(output, frames.dataset.name, frames.split, frames.dataset.fps, frames.class_names,
                       description, frames.dataset.background) as writer,
          BatchLoader(batches, range(len(plan)), workers, pin_memory=cuda, thread=cuda) as loader):
        for (number, last, _), (crops, _labels) in zip(plan, loader, strict=True):
            chunks.append(network_logits(model, preprocess, crops, device, precision).cpu().numpy())
            bar.update(len(crops))
            if last:
                video = frames.videos[number]
                writer.add(video.name, video.subset, np.concatenate(chunks), video.labels,
                           participant=video.participant)
                chunks = []
    bar.close()
    return Path(output)
