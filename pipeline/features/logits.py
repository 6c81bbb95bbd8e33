"""Per-frame logits of one dataset split in one HDF5 file: the input of the recurrent stage.

Layout (one file per dataset and split):

    /                  attrs: dataset, split, fps, class_names (JSON list), background (class name or
                       ""), model (JSON: backbone, checkpoint, input size, ...), format_version
    /<video>/logits    (T, C) float32, one row per frame
    /<video>/labels    (T,) int64 class ids
    /<video>/boundary  (T, 2) float32, optional: the boundary LSTM's (mean, std) of the frames
                       to the next action boundary, in units of its horizon (`pipeline.training`)
    /<video>           attrs: subset ("train" or "test": the split's side this video is on),
                       participant (the person recorded; optional, the video's name when absent)

Written to a temporary file and renamed when complete (`LogitsWriter`); read with `Logits`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

FORMAT_VERSION = 1


class LogitsWriter:
    def __init__(self, path: str | Path, dataset: str, split: int, fps: float, class_names: list[str], model: dict,
                 background: str | None = None):
        self.path = Path(path)
        self.temporary = self.path.with_name(f".{self.path.name}.part")
        self.attrs = {"dataset": dataset, "split": split, "fps": fps, "class_names": json.dumps(class_names),
                      "background": background or "", "model": json.dumps(model), "format_version": FORMAT_VERSION}
        self.num_classes = len(class_names)
        self.handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = h5py.File(self.temporary, "w")
        self.handle.attrs.update(self.attrs)
        return self

    def add(self, name: str, subset: str, logits: np.ndarray, labels: np.ndarray, boundary: np.ndarray | None = None,
            participant: str | None = None):
        if logits.shape != (len(labels), self.num_classes):
            raise ValueError(f"video {name!r}: logits {logits.shape} do not match {len(labels)} frames x "
                             f"{self.num_classes} classes")
        group = self.handle.create_group(name)
        group.attrs["subset"] = subset
        if participant is not None:
            group.attrs["participant"] = participant
        group.create_dataset("logits", data=logits.astype(np.float32))
        group.create_dataset("labels", data=labels.astype(np.int64))
        if boundary is not None:
            if boundary.shape != (len(labels), 2):
                raise ValueError(f"video {name!r}: boundary {boundary.shape} is not ({len(labels)}, 2)")
            group.create_dataset("boundary", data=boundary.astype(np.float32))

    def __exit__(self, exc_type, exc, traceback):
        self.handle.close()
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
        return False


class Logits:
    """Read a logits file: `names(subset)`, `logits(name)`, `labels(name)`, `subset(name)`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"logits file {self.path} does not exist")
        try:
            self.handle = h5py.File(self.path, "r")
        except OSError as error:
            raise ValueError(f"{self.path}: not a readable HDF5 logits file ({error})") from None
        attrs = self.handle.attrs
        if attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: not a logits file of format {FORMAT_VERSION}")
        self.dataset = str(attrs["dataset"])
        self.split = int(attrs["split"])
        self.fps = float(attrs["fps"])
        self.class_names = json.loads(attrs["class_names"])
        self.background = str(attrs.get("background", "")) or None
        self.model = json.loads(attrs["model"])

    def names(self, subset: str | None = None) -> list[str]:
        return [name for name, group in self.handle.items() if subset is None or group.attrs["subset"] == subset]

    def subset(self, name: str) -> str:
        return str(self.handle[name].attrs["subset"])

    def participant(self, name: str) -> str:
        """The person recorded in the video (its name, in files written without participants)."""
        return str(self.handle[name].attrs.get("participant", name))

    def logits(self, name: str) -> np.ndarray:
        return self.handle[name]["logits"][()]

    def labels(self, name: str) -> np.ndarray:
        return self.handle[name]["labels"][()]

    def boundary(self, name: str) -> np.ndarray | None:
        group = self.handle[name]
        return group["boundary"][()] if "boundary" in group else None

    def close(self) -> None:
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def frame_accuracy(path: str | Path, subset: str = "test") -> dict:
    """Accuracy of argmax(logits) over every frame of `subset` (the paper's "None" row for a split)."""
    with Logits(path) as logits:
        correct = total = 0
        for name in logits.names(subset):
            correct += int(np.sum(logits.logits(name).argmax(1) == logits.labels(name)))
            total += len(logits.labels(name))
        if total == 0:
            raise ValueError(f"{path}: no {subset} videos")
        return {"dataset": logits.dataset, "split": logits.split, "subset": subset, "frames": total,
                "frame_accuracy": correct / total}
