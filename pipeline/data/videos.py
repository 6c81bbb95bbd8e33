"""Finding each annotated video's recording on disk, whatever folder layout the dataset ships.

A recording matches a video name by its file stem (`rgb-01-1.avi` -> "rgb-01-1") or by its path
below the root with folders joined by "_" (Breakfast's `P03/cam01/P03_cereals.avi` ->
"P03_cam01_P03_cereals", the name its annotations use).
"""

from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


def index_videos(root: str | Path, extensions=VIDEO_EXTENSIONS) -> dict[str, Path]:
    """Map every name a recording under `root` can be known by to its path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist")
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        relative = path.relative_to(root).with_suffix("")
        for key in (path.stem, "_".join(relative.parts)):
            index.setdefault(key, path)
    return index


def attach_videos(dataset, root: str | Path, required: bool = True) -> None:
    """Set `video_path` on every video of `dataset` from the recordings under `root`."""
    index = index_videos(root)
    missing = []
    for video in dataset.videos.values():
        video.video_path = index.get(video.name)
        if video.video_path is None:
            missing.append(video.name)
    if missing and required:
        raise FileNotFoundError(f"no recording under {root} for {len(missing)} annotated videos of dataset "
                                f"{dataset.name!r}, e.g. {missing[:3]} (looked for <name>.<ext> or "
                                f"<folders joined by _>.<ext>, extensions {', '.join(VIDEO_EXTENSIONS)})")


def write_video(path: str | Path, frames, fps: float, codec: str = "libx264", crf: int = 18) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames to `path` (container from its suffix), atomically.

    Height and width must be even (yuv420p). The encoder runs on one thread: x264 picks its thread
    count from the CPUs it sees, and the bytes it writes depend on it. Even so, PyAV's libx264 was
    seen to write other bytes for the same frames after other work in the same process; `mpeg4`
    (FFmpeg's own MPEG-4 Part 2 encoder, at its finest quantiser here) gives the same bytes whatever
    the process, which is why the synthetic datasets use it.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.part{path.suffix}")
    height, width = frames.shape[1:3]
    try:
        with av.open(str(temporary), mode="w") as container:
            stream = container.add_stream(codec, rate=_rational(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.thread_count = 1
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
            elif codec == "mpeg4":
                stream.codec_context.qscale = 2  # the finest quantiser: near lossless
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _rational(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
