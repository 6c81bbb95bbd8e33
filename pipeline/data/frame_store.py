"""Frame stores: one file per video holding its decoded frames, written atomically, read by index.

- `<video>.npy`: (T, H, W, 3) uint8, read memory-mapped: no decoding at training time, at the cost
  of T*H*W*3 bytes (the synthetic demo, or small frames).
- `<video>.h5`: dataset `jpeg`, one JPEG per frame (variable-length uint8), attributes `height`,
  `width`, `fps`: about a tenth of the disk; frames are decoded when read.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = ("npy", "h5")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{path}: a frame store ends in .npy or .h5, not .{suffix}")
    return suffix


class FrameStoreWriter:
    """Append exactly `count` frames, then the store appears at `path`; on any error nothing does."""

    def __init__(self, path: str | Path, count: int, fps: float | None = None, jpeg_quality: int = 90):
        self.path = Path(path)
        self.format = _format_of(self.path)
        self.count = count
        self.fps = fps
        self.jpeg_quality = jpeg_quality
        self.temporary = self.path.with_name(f".{self.path.name}.part")
        self.written = 0
        self._array = None
        self._encoded: list[np.ndarray] = []
        self._shape = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def append(self, image: np.ndarray) -> None:
        if self.written >= self.count:
            raise ValueError(f"{self.path}: more than the {self.count} frames announced")
        if self._shape is None:
            self._shape = image.shape
            if self.format == "npy":
                self._array = np.lib.format.open_memmap(self.temporary, mode="w+", dtype=np.uint8,
                                                        shape=(self.count, *image.shape))
        elif image.shape != self._shape:
            raise ValueError(f"{self.path}: frame {self.written} has shape {image.shape}, earlier {self._shape}")
        if self.format == "npy":
            self._array[self.written] = image
        else:
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=self.jpeg_quality)
            self._encoded.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        self.written += 1

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc_type is None:
                if self.written != self.count:
                    raise ValueError(f"{self.path}: {self.written} frames written, {self.count} announced")
                self._finish()
                os.replace(self.temporary, self.path)
        finally:
            self._array = None
            self.temporary.unlink(missing_ok=True)
        return False

    def _finish(self):
        if self.format == "npy":
            self._array.flush()
            return
        import h5py

        with h5py.File(self.temporary, "w") as handle:
            frames = handle.create_dataset("jpeg", (self.count,), dtype=h5py.vlen_dtype(np.uint8))
            for index, data in enumerate(self._encoded):
                frames[index] = data
            height, width = self._shape[:2]
            handle.attrs.update({"height": height, "width": width, "fps": self.fps or 0.0})


class FrameStore:
    """Read frames of one stored video: `len(store)`, `store.read(indices)` -> (N, H, W, 3) uint8."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.format = _format_of(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"frame store {self.path} does not exist")
        if self.format == "npy":
            self._array = np.load(self.path, mmap_mode="r")
            self._length, self.height, self.width = self._array.shape[:3]
        else:
            import h5py

            self._handle = h5py.File(self.path, "r")
            self._frames = self._handle["jpeg"]
            self._length = len(self._frames)
            self.height, self.width = int(self._handle.attrs["height"]), int(self._handle.attrs["width"])

    def __len__(self) -> int:
        return self._length

    def read(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self._length):
            raise IndexError(f"{self.path}: frame index out of 0..{self._length - 1}")
        if self.format == "npy":
            return np.asarray(self._array[indices])
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        for k, index in enumerate(indices.tolist()):
            with Image.open(io.BytesIO(self._frames[index].tobytes())) as image:
                out[k] = np.asarray(image.convert("RGB"))
        return out

    def close(self) -> None:
        if self.format == "h5":
            self._handle.close()
        self._array = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def stored_length(path: str | Path) -> int:
    with FrameStore(path) as store:
        return len(store)
