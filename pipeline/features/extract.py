"""Logit extraction: every frame of every video of a split (train and test sides) through the
fine-tuned classifier, into that split's HDF5 logits file (layout in `logits.py`).

On a GPU, frames are read and preprocessed (central crop, normalise) in a background thread while
the network runs on the previous batch. On the CPU the network already keeps every core busy and a
second thread only competes with it (measured slower on 2 cores), so batches are prepared in turn.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import torch

from ..device import select_device
from ..progress import progress_bar
from .finetune import load_classifier
from .frame_batches import Preprocess, SplitFrames
from .logits import LogitsWriter


def _batches(frames: SplitFrames, preprocess: Preprocess, batch_size: int):
    """(video number, whether it is the video's last batch, inputs) per batch; batches never span
    two videos."""
    for number, video in enumerate(frames.videos):
        count = len(video.labels)
        for start in range(0, count, batch_size):
            index = np.arange(start, min(count, start + batch_size))
            rows = np.stack([np.full(len(index), number), index], 1)
            images, _ = frames.read(rows)
            yield number, start + batch_size >= count, preprocess(images)


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


@torch.inference_mode()
def extract_logits(frames: SplitFrames, model_path: str | Path, output: str | Path, batch_size: int = 64,
                   device: str = "auto") -> Path:
    """Write the logits of every frame of `frames` with the classifier at `model_path` to `output`."""
    frames.check()
    device = select_device(device)
    model, saved = load_classifier(model_path, device)
    if saved["class_names"] != frames.class_names:
        raise ValueError(f"{model_path} was trained on classes of dataset {saved['dataset']!r}, not those of "
                         f"{frames.dataset.name!r}")
    preprocess = Preprocess(saved["input_size"], model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
    description = {"backbone": saved["backbone"], "backbone_args": saved["backbone_args"],
                   "input_size": saved["input_size"], "checkpoint": str(model_path),
                   "trained_on": f"{saved['dataset']} split {saved['split']}"}
    total = sum(len(v.labels) for v in frames.videos)
    bar = progress_bar(total, f"extract {frames.dataset.name} split {frames.split}")
    chunks: list[np.ndarray] = []
    with LogitsWriter(output, frames.dataset.name, frames.split, frames.dataset.fps, frames.class_names,
                      description, frames.dataset.background) as writer:
        batches = _batches(frames, preprocess, batch_size)
        for number, last, inputs in _prefetched(batches) if device.type == "cuda" else batches:
            chunks.append(model(inputs.to(device)).float().cpu().numpy())
            bar.update(len(inputs))
            if last:
                video = frames.videos[number]
                writer.add(video.name, video.subset, np.concatenate(chunks), video.labels,
                           participant=video.participant)
                chunks = []
    bar.close()
    return Path(output)
