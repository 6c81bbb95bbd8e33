"""Peak memory and time of the features route at Breakfast's size: checking the arrays and fitting
the linear frame classifier (`python -m pipeline check-features`, `linear`), each in its own process.

A folder of the shape of Breakfast's I3D release is synthesised first (one D x T float32 `.npy` per
video, MS-TCN layout, 2048 dimensions; the video lengths of the real Breakfast ground truth when
`--lengths-from` names its groundTruth folder, else log-normal lengths of the same mean), with
random labels in 48 classes. `--scale` shrinks it (the number of videos), so that peak memory can
be compared across sizes: it should not grow with the dataset.

    python benchmarks/features.py --folder /tmp/bf --scale 0.1          # ~3 GB of features
    python benchmarks/features.py --folder /tmp/bf --scale 1 --lengths-from ../shared/data/real/breakfast/groundTruth

Needs (scale x 29.4) GB of free disk. Prints one row per step: frames, GB on disk, seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = 48
BREAKFAST_VIDEOS = 1712
BREAKFAST_MEAN_FRAMES = 2097.5


def lengths(scale: float, lengths_from: str | None, rng) -> list[int]:
    if lengths_from:
        real = [len(path.read_text().splitlines()) for path in sorted(Path(lengths_from).glob("*.txt"))]
    else:
        sigma = 0.75
        real = np.maximum(100, rng.lognormal(np.log(BREAKFAST_MEAN_FRAMES) - sigma ** 2 / 2, sigma,
                                             BREAKFAST_VIDEOS)).astype(int).tolist()
    count = max(8, round(len(real) * scale))
    return [real[i] for i in np.linspace(0, len(real) - 1, count).round().astype(int)]


def synthesise(folder: Path, scale: float, dim: int, lengths_from: str | None) -> tuple[int, float]:
    """Write the folder (once: reused when its description matches); returns (frames, GB)."""
    rng = np.random.default_rng(0)
    sizes = lengths(scale, lengths_from, rng)
    description = {"scale": scale, "dim": dim, "videos": len(sizes), "frames": int(sum(sizes))}
    marker = folder / "benchmark.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == description):
        (folder / "groundTruth").mkdir(parents=True, exist_ok=True)
        (folder / "features").mkdir(exist_ok=True)
        (folder / "mapping.txt").write_text("".join(f"{c} class{c}\n" for c in range(CLASSES)))
        for index, frames in enumerate(sizes):
            name = f"P{index % 52 + 3:02d}_video{index:04d}"  # 52 participants, as Breakfast
            labels = np.repeat(rng.integers(0, CLASSES, frames // 100 + 1), 100)[:frames]
            (folder / "groundTruth" / f"{name}.txt").write_text("".join(f"class{c}\n" for c in labels))
            np.save(folder / "features" / f"{name}.npy", rng.standard_normal((dim, frames), dtype=np.float32))
        marker.write_text(json.dumps(description))
    return description["frames"], sum(p.stat().st_size for p in (folder / "features").iterdir()) / 1e9


def measured(argv: list[str], threads: int) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of `python -m pipeline <argv>` in a process of its own."""
    code = ("import resource, sys; from pipeline.__main__ import main; code = main(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    peak_kb = int(result.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", required=True, help="where the synthesised MS-TCN folder is written (reused)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Breakfast's 1712 videos")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (I3D: 2048)")
    parser.add_argument("--lengths-from", help="a groundTruth folder whose video lengths to copy (Breakfast's)")
    parser.add_argument("--max-frames", type=int, default=200_000, help="the classifier's sample size")
    parser.add_argument("--iterations", type=int, default=20,
                        help="L-BFGS iterations (memory does not depend on them; the default config runs 200)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    started = time.monotonic()
    frames, gigabytes = synthesise(folder, args.scale, args.dim, args.lengths_from)
    print(f"synthesised {frames:,} frames x {args.dim} ({gigabytes:.1f} GB) in {time.monotonic() - started:.0f} s")
    spec = json.dumps({"name": "breakfast_like", "format": "mstcn", "annotations": str(folder), "fps": 15})
    out = folder / "out"
    steps = {
        "check-features": ["check-features", "--dataset", spec, "--report", str(out / "report.csv")],
        "linear (split 1)": ["linear", "--dataset", spec, "--split", "1", "--output", str(out / "logits.h5"),
                             "--work-dir", str(out / "linear"), "--max-frames", str(args.max_frames),
                             "--iterations", str(args.iterations), "--device", "cpu"],
    }
    print("\n| step | videos x frames | features on disk | seconds | peak RSS |")
    print("|---|---|---|---|---|")
    for name, step in steps.items():
        seconds, peak = measured(step, args.threads)
        videos = len(list((folder / "groundTruth").glob("*.txt")))
        print(f"| {name} | {videos} x {frames:,} | {gigabytes:.1f} GB | {seconds:.0f} | {peak:.2f} GB |", flush=True)


if __name__ == "__main__":
    main()
