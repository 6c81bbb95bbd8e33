"""Peak memory and time of the features route at Breakfast's size: checking the arrays and fitting
the linear frame classifier (`python -m pipeline check-features`, `linear`), and the recurrent stage
reading the features themselves (`recurrent.inputs: features`: the standardisation's sample, training
steps and the evaluation of the longest test videos, `recurrent_on_features`), each in its own process.

A folder of the shape of Breakfast's I3D release is synthesised first (one D x T float32 `.npy` per
video, MS-TCN layout, 2048 dimensions; the video lengths of the real Breakfast ground truth when
`--lengths-from` names its groundTruth folder, else log-normal lengths of the same mean), with
random labels in 48 classes. `--scale` shrinks it (the number of videos), so that peak memory can
be compared across sizes: it should not grow with the dataset.

    python benchmarks/features.py --folder /tmp/bf --scale 0.1          # ~3 GB of features
    python benchmarks/features.py --folder /tmp/bf --scale 1 --lengths-from ../shared/data/real/breakfast/groundTruth

Needs (scale x 29.4) GB of free disk. Prints one row per step: frames, GB on disk, seconds, peak RSS.
The recurrent step is the paper's model (3 layers of 128 units, history 200, batch 128) on the 2048-d
features through a learned projection to 64 dimensions, `--steps` training steps and the `--videos`
longest test videos evaluated (a full evaluation of the ~900,000 test frames takes hours on a CPU and
holds no more: one video at a time).
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


def measured(argv: list[str], threads: int, code: str | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, its output) of `python -m pipeline <argv>` (or of the script `code`
    with `argv`) in a process of its own."""
    code = (code or "from pipeline.__main__ import main; code = main(sys.argv[1:])\n") + \
        "\nimport resource, sys; print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", "import sys\n" + code, *argv], capture_output=True, text=True,
                            env=env, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    peak_kb = int(result.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1e6, result.stdout


RECURRENT = """
import resource, sys, time
import numpy as np, torch
from pipeline.data import load_dataset
from pipeline.data.precomputed import FeatureSource
from pipeline.training.classifier import SequenceClassifier, frame_loss
from pipeline.training.config import RecurrentConfig
from pipeline.training.evaluation import predict_video
from pipeline.training.inputs import FeatureInput, Layout, WindowSampler
from pipeline.training.sequences import load_split

spec, logits, steps, videos = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import json
split = load_split(logits)
source = FeatureSource(load_dataset(json.loads(spec)), fps=15)
started = time.monotonic()
layout = Layout([split], "blocks", [FeatureInput(source, split)])
print("STATS_S", round(time.monotonic() - started, 1))
config = RecurrentConfig(protocol="single", model="lstm", layers=3, hidden=128, history=200, batch_size=128,
                         input_projection=64, inputs="features", device="cpu", eval_batch=512)
model = SequenceClassifier("lstm", layout.input_size, layout.num_labels, config, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
sampler = WindowSampler(layout, config)
started = time.monotonic()
for step in range(steps):
    x, mask, targets, sizes = sampler.batch(step)
    loss = frame_loss(model(x, domain_sizes=sizes, mask=mask), targets, "frames")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("TRAIN_S_PER_STEP", round((time.monotonic() - started) / steps, 2))
model.eval()
longest = sorted(split.subset("test"), key=lambda s: -len(s.labels))[:videos]
started = time.monotonic()
frames = 0
for sequence in longest:
    predict_video(model, layout.features(0, sequence), layout.block(0), 0, config, "cpu")
    frames += len(sequence.labels)
print("EVAL_FRAMES_PER_S", round(frames / (time.monotonic() - started), 1), "LONGEST", len(longest[0].labels))
"""


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
    parser.add_argument("--steps", type=int, default=20, help="training steps of the recurrent step")
    parser.add_argument("--videos", type=int, default=3, help="longest test videos the recurrent step evaluates")
    parser.add_argument("--skip", nargs="*", default=[], choices=("check-features", "linear", "recurrent"),
                        help="steps not to run (the recurrent step needs the linear step's logits file)")
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
    print("\n| step | videos x frames | features on disk | seconds | peak RSS | notes |")
    print("|---|---|---|---|---|---|")
    videos = len(list((folder / "groundTruth").glob("*.txt")))
    for name, step in steps.items():
        if name.split()[0] in args.skip:
            continue
        seconds, peak, _ = measured(step, args.threads)
        print(f"| {name} | {videos} x {frames:,} | {gigabytes:.1f} GB | {seconds:.0f} | {peak:.2f} GB | |", flush=True)
    if "recurrent" not in args.skip:
        seconds, peak, output = measured([spec, str(out / "logits.h5"), str(args.steps), str(args.videos)],
                                         args.threads, RECURRENT)
        values = dict(zip(output.split()[::2], output.split()[1::2]))
        print(f"| recurrent on features (split 1) | {videos} x {frames:,} | {gigabytes:.1f} GB | {seconds:.0f} | "
              f"{peak:.2f} GB | standardisation sample {values['STATS_S']} s; {values['TRAIN_S_PER_STEP']} s per "
              f"training step (B=128, T=200, 2048 -> 64, 3 x 128 units); evaluation {values['EVAL_FRAMES_PER_S']} "
              f"frames/s on the {args.videos} longest test videos (the longest {values['LONGEST']} frames) |",
              flush=True)


if __name__ == "__main__":
    main()
