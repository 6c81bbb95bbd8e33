"""Video decoding speed of `pipeline.data.frames` (PyAV) against the `ffmpeg` command line.

Both decode the same H.264 file to RGB24 frames, at native size and resized; ffmpeg writes its raw
frames to /dev/null, ours yields one numpy array per frame, as the frame stores consume them. Runs
alternate between the two (drifts in machine speed hit both alike); the best of `--repeats` is kept.

    python benchmarks/decode.py                     # 320x240 and 640x480, 30 fps, 20 s each
    python benchmarks/decode.py --seconds 60 --repeats 5

Needs the `ffmpeg` program (Debian/Ubuntu: apt install ffmpeg). Target: ours >= 80% of ffmpeg.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.data.frames import iter_frames, output_size
from pipeline.data.videos import write_video


def test_video(path: Path, width: int, height: int, fps: float, seconds: float) -> int:
    """Moving gradients, blobs and noise: content that H.264 neither finds trivial nor random."""
    frames = int(fps * seconds)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        phase = t / fps
        base = 0.5 + 0.25 * np.sin(x / 23 + 2 * phase) + 0.25 * np.cos(y / 17 - 1.5 * phase)
        blob = np.exp(-((x - width * (0.5 + 0.3 * np.sin(phase))) ** 2 + (y - height / 2) ** 2) / (0.02 * width * height))
        image = np.stack([base, 0.6 * base + 0.4 * blob, blob], -1) + rng.normal(0, 0.03, (height, width, 3))
        images[t] = np.clip(image * 255, 0, 255).astype(np.uint8)
    write_video(path, images, fps)
    return frames


def time_ffmpeg(path: Path, size) -> float:
    command = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path)]
    if size is not None:
        command += ["-vf", f"scale={size[0]}:{size[1]}"]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def time_ours(path: Path, size, frames: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in iter_frames(path, size=None if size is None else (size[1], size[0])))
    elapsed = time.perf_counter() - start
    assert count == frames, f"decoded {count} frames of {frames}"
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each test video")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each decoder; the fastest counts")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed (apt install ffmpeg); nothing to compare against", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for width, height in ((320, 240), (640, 480)):
            path = Path(folder) / f"test_{width}x{height}.mp4"
            frames = test_video(path, width, height, 30.0, args.seconds)
            for size in (None, output_size(width, height, 128)):
                ffmpeg, ours = [], []
                for _ in range(args.repeats):
                    ffmpeg.append(time_ffmpeg(path, size))
                    ours.append(time_ours(path, size, frames))
                label = "native" if size is None else f"{size[0]}x{size[1]}"
                rows.append((f"{width}x{height}", label, frames / min(ffmpeg), frames / min(ours)))
    print("| video (H.264, 30 fps) | output RGB24 | ffmpeg CLI frames/s | ours frames/s | ours / ffmpeg |")
    print("|---|---|---|---|---|")
    for video, output, ffmpeg_rate, our_rate in rows:
        print(f"| {video} | {output} | {ffmpeg_rate:.0f} | {our_rate:.0f} | {our_rate / ffmpeg_rate:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
