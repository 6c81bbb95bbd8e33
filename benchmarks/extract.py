"""Logit extraction rate against the backbone's raw forward rate at the same batch size.

Raw: the network alone on a ready, normalised batch, over and over. Extraction: the whole
`extract_logits` path (frame store reads, central crop and normalisation, forward, HDF5 writes)
with the CPU's defaults (float32, batches prepared in this process: `workers` 0), over frame stores
of the same total frame count. Both untrained networks with 48 classes under
`torch.inference_mode()`, alternating, best of `--repeats`. Worker processes and bf16, and
fine-tuning's rate: `benchmarks/cnn.py`.

    python benchmarks/extract.py                 # demo and paper sizes
    python benchmarks/extract.py --sizes demo --repeats 5

Sizes: "demo" is the CPU demo's BN-Inception at width 0.25 on 64x64 frames; "paper" the full
BN-Inception on 224x224 crops of 341x256 frames (Breakfast's 320x240 scaled to a 256 short side).
Target: extraction >= 90% of the raw forward rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.data.dataset import Dataset, Split, Video
from pipeline.features.backbone import create_backbone
from pipeline.features.extract import extract_logits
from pipeline.features.frame_batches import Preprocess, SplitFrames

SIZES = {
    # name: (backbone args, input size, stored frame (height, width), batch, videos, frames per video)
    "demo": ({"width_multiplier": 0.25}, 64, (64, 64), 64, 16, 512),
    "paper": ({}, 224, (256, 341), 32, 2, 96),
}
CLASSES = 48


def build(folder: Path, size: str):
    backbone_args, input_size, (height, width), _, videos, length = SIZES[size]
    rng = np.random.default_rng(0)
    names = [f"P{i:02d}_video" for i in range(videos)]
    for name in names:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (length, height, width, 3), dtype=np.uint8))
    dataset = Dataset("bench", [f"class{i}" for i in range(CLASSES)],
                      {n: Video(n, n[:3], rng.integers(0, CLASSES, length)) for n in names}, fps=15.0,
                      splits=[Split(train=names[: videos // 2], test=names[videos // 2 :])])
    torch.manual_seed(0)
    model = create_backbone("bninception", CLASSES, **backbone_args)
    torch.save({"model": model.state_dict(), "backbone": "bninception", "backbone_args": backbone_args,
                "input_size": input_size, "class_names": dataset.class_names, "dataset": "bench", "split": 1,
                "fps": 15.0, "config": {}}, folder / "model.pt")
    return SplitFrames(dataset, 1, folder), model.eval(), videos * length


@torch.inference_mode()
def raw_rate(model, split_frames, input_size: int, batch: int, frames: int) -> float:
    # The same frames extraction sees, preprocessed once: values decide speed on a CPU (an untrained
    # network fed torch.randn decays into denormal floats and runs slower).
    preprocess = Preprocess(input_size, model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
    x = preprocess(split_frames.read(np.stack([np.zeros(batch, np.int64), np.arange(batch)], 1))[0])
    batches = -(-frames // batch)
    model(x)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        model(x)
    return batches * batch / (time.perf_counter() - start)


def extract_rate(split_frames, folder: Path, batch: int, frames: int) -> float:
    start = time.perf_counter()
    extract_logits(split_frames, folder / "model.pt", folder / "logits.h5", batch_size=batch, device="cpu",
                   precision="fp32", workers=0)
    return frames / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            split_frames, model, frames = build(folder, size)
            input_size, batch = SIZES[size][1], SIZES[size][3]
            raw, ours = [], []
            extract_rate(split_frames, folder, batch, frames)  # warm-up: page cache, allocator
            for _ in range(args.repeats):
                raw.append(raw_rate(model, split_frames, input_size, batch, frames))
                ours.append(extract_rate(split_frames, folder, batch, frames))
            rows.append((size, input_size, batch, frames, max(raw), max(ours)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| size | input | batch | frames | raw forward frames/s | extraction frames/s | extraction / raw |")
    print("|---|---|---|---|---|---|---|")
    for size, input_size, batch, frames, raw, ours in rows:
        print(f"| {size} | {input_size} | {batch} | {frames} | {raw:.1f} | {ours:.1f} | {ours / raw:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
