"""Decoding videos into frame stores that training reads fast, aligned frame for frame with labels.

Decoding: PyAV (FFmpeg) with frame-threaded decoding, colour conversion and resizing in swscale.
With an output `fps`, output frame k shows the decoded frame on screen at time k / fps (the last
frame whose timestamp is <= k / fps); `resample_labels` uses the same rule, so frames and labels
stay aligned whatever the two rates.

Frame stores (`frame_store.py`): one file per video, `.npy` (raw uint8, memory-mapped reads) or
`.h5` (one JPEG per frame, about a tenth of the disk).

Mismatch policy (`alignment.py`, shared with precomputed features): the label count is the
reference; extra decoded frames at the end are dropped, missing ones repeat the last decoded frame,
within a tolerance; beyond it the video is an error naming it. Every video's decoded and label
counts and the action taken are reported (`FrameReport`, written to a CSV by `store_dataset`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import write_csv, write_text
from .alignment import alignment_action, allowed_mismatch
from .frame_store import FrameStoreWriter, stored_length


class VideoDecodeError(RuntimeError):
    """A video that cannot be decoded, or whose length disagrees with its labels beyond tolerance."""


@dataclass
class FrameReport:
    video: str
    path: str
    decoded: int  # frames decoded (after fps resampling)
    labels: int  # frames labelled, the count stored
    action: str  # "exact", "dropped N", "padded N"


def output_size(width: int, height: int, size) -> tuple[int, int]:
    """(width, height) after resizing: `size` None keeps the frame, an int is the short side (aspect
    kept, rounded to even), a pair is (height, width)."""
    if size is None:
        return width, height
    if isinstance(size, int):
        scale = size / min(width, height)
        return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))
    out_height, out_width = size
    return int(out_width), int(out_height)


def iter_frames(path: str | Path, fps: float | None = None, size=None, info: dict | None = None):
    """Yield (H, W, 3) uint8 RGB frames of `path`, resampled to `fps` (None: every frame) and resized
    (see `output_size`). Raises VideoDecodeError naming the file if it cannot be decoded. `info`, if
    given, receives the stream's "native_fps" (None where it has none) and, once the video is read,
    the number of frames "decoded" at that rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: video file does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoDecodeError(f"{path}: cannot open as a video ({error})") from error
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        native_rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        if info is not None:
            info["native_fps"] = native_rate
        width, height = output_size(stream.codec_context.width, stream.codec_context.height, size)
        # One reformatter for the whole video keeps its swscale context: a fresh one per frame (what
        # frame.to_ndarray(width=...) does) costs about as much as decoding the frame.
        reformatter = av.video.reformatter.VideoReformatter()
        held, held_time, start_time, emitted, decoded = None, None, None, 0, 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if frame.time is not None:
                    when = frame.time
                elif native_rate:
                    when = (decoded - 1) / native_rate
                else:
                    raise VideoDecodeError(f"{path}: frames carry no timestamps and the stream no frame rate")
                start_time = when if start_time is None else start_time
                when -= start_time
                image = reformatter.reformat(frame, format="rgb24", width=width, height=height).to_ndarray()
                if fps is None:
                    yield image
                    continue
                # Emit the held frame for every output time before this frame appears.
                while held is not None and emitted / fps < when - 1e-6:
                    yield held
                    emitted += 1
                held, held_time = image, when
        except av.error.FFmpegError as error:
            raise VideoDecodeError(f"{path}: decoding failed after {decoded} frames ({error})") from error
        if decoded == 0:
            raise VideoDecodeError(f"{path}: no frames could be decoded (empty or truncated file)")
        if info is not None:
            info["decoded"] = decoded
        if fps is not None and held is not None:
            frame_duration = 1.0 / native_rate if native_rate else 0.0
            while emitted / fps < held_time + frame_duration - 1e-6:
                yield held
                emitted += 1


def decode_video(path: str | Path, fps: float | None = None, size=None) -> np.ndarray:
    """All frames of `path` as one (T, H, W, 3) uint8 array (for short videos and tests)."""
    return np.stack(list(iter_frames(path, fps, size)))


def store_video(
    video_path: str | Path,
    store_path: str | Path,
    num_labels: int,
    fps: float | None = None,
    size=None,
    tolerance_frames: int = 10,
    tolerance_fraction: float = 0.02,
    name: str | None = None,
    jpeg_quality: int = 90,
) -> FrameReport:
    """Decode `video_path` into the frame store `store_path` holding exactly `num_labels` frames,
    under the mismatch policy above. Nothing is left at `store_path` if it fails."""
    tolerance = allowed_mismatch(num_labels, tolerance_frames, tolerance_fraction)
    decoded = 0
    with FrameStoreWriter(store_path, num_labels, fps=fps, jpeg_quality=jpeg_quality) as writer:
        last = None
        for image in iter_frames(video_path, fps, size):
            if decoded < num_labels:
                writer.append(image)
            decoded += 1
            last = image
            if decoded > num_labels + tolerance:
                raise VideoDecodeError(f"{video_path}: more than {num_labels + tolerance} frames decoded for "
                                       f"{num_labels} labels (tolerance {tolerance})")
        if decoded < num_labels - tolerance:
            raise VideoDecodeError(f"{video_path}: {decoded} frames decoded for {num_labels} labels, more than "
                                   f"the tolerance of {tolerance} frames short (truncated or wrong video?)")
        for _ in range(num_labels - decoded):
            writer.append(last)
    return FrameReport(name or Path(video_path).stem, str(video_path), decoded, num_labels,
                       alignment_action(decoded, num_labels))


PARAMETERS_FILE = "store.json"  # beside the stores: the parameters they were decoded with


def _stores_made_with(output_dir: Path, parameters: dict) -> bool:
    """Whether the stores in `output_dir` were decoded with `parameters`; if not, they are deleted
    (a store of another size or rate must not be kept) and `parameters` recorded for the new ones."""
    record = output_dir / PARAMETERS_FILE
    if record.is_file() and json.loads(record.read_text()) == parameters:
        return True
    for store in output_dir.iterdir():
        if store.suffix.lstrip(".") in ("npy", "h5") and store.is_file():
            store.unlink()
    write_text(record, json.dumps(parameters, indent=2) + "\n")
    return False


def store_dataset(dataset, output_dir: str | Path, store_format: str = "npy", fps: float | None = None,
                  size=None, tolerance_frames: int = 10, tolerance_fraction: float = 0.02,
                  report_path: str | Path | None = None, progress=sys.stderr) -> list[FrameReport]:
    """Frame stores for every video of `dataset` (its labels resampled to `fps`), and a CSV report of
    every video's counts at `report_path`. Stores already there are kept when `store.json` says they
    were decoded with the same format, rate, size and tolerance (a resumed run), else rewritten."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _stores_made_with(output_dir, {"store": store_format, "fps": fps, "size": list(size) if isinstance(size, tuple) else size,
                                   "tolerance_frames": tolerance_frames, "tolerance_fraction": tolerance_fraction})
    labelled = dataset.resampled(fps)
    missing = [v.name for v in labelled.videos.values() if v.video_path is None]
    if missing:
        raise FileNotFoundError(f"dataset {dataset.name!r}: no recording attached to {missing[:3]} "
                                f"({len(missing)} videos); set 'videos' in its spec")
    reports, started = [], time.monotonic()
    videos = list(labelled.videos.values())
    for index, video in enumerate(videos, start=1):
        store = output_dir / f"{video.name}.{store_format}"
        if store.exists():
            reports.append(FrameReport(video.name, str(video.video_path), stored_length(store), video.num_frames,
                                       "already stored"))
            continue
        reports.append(store_video(video.video_path, store, video.num_frames, fps=fps, size=size,
                                   tolerance_frames=tolerance_frames, tolerance_fraction=tolerance_fraction,
                                   name=video.name))
        if progress is not None:
            elapsed = time.monotonic() - started
            print(f"[frames {dataset.name}] {index}/{len(videos)} {video.name}: {reports[-1].action} "
                  f"({elapsed:.0f}s elapsed)", file=progress, flush=True)
    if report_path is not None:
        write_report(reports, report_path)
    return reports


def write_report(reports: list[FrameReport], path: str | Path) -> None:
    write_csv([asdict(r) for r in reports], path, fieldnames=list(FrameReport.__annotations__))
