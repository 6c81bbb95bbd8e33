"""Frame CNN throughput: fine-tuning and extraction images/s through the pipeline's own code paths
(`finetune`, `extract_logits`), by loader processes (`workers`) and precision (fp32 / bf16 autocast).

    python benchmarks/cnn.py                                   # on CUDA: 224 px, workers 0 and 4, fp32 and bf16
    python benchmarks/cnn.py --device cpu --sizes demo paper --threads 1 2 --workers 0 2

Sizes: "demo" is the CPU demo's BN-Inception at width 0.25 on its 32x32 frames (input 32); "paper"
the full BN-Inception on 224x224 crops of 341x256 frames (Breakfast's 320x240 scaled to a 256 short
side). Frames are random uint8 in .npy frame stores (read memory-mapped: reading costs little;
.h5 stores, with a JPEG decode per frame, make the loader's share larger), 48 classes, untrained
networks. Fine-tuning: images/s of the optimiser steps after `--warmup` steps, timed between
`on_step` calls (the epoch's last step, which also evaluates, is left out). Extraction: all frames
of the stores through `extract_logits` (model load, loader start, HDF5 writes included), after one
untimed warm-up run. Configurations run interleaved, best of `--repeats`. bf16 runs where the
device has bfloat16 arithmetic (CUDA from Ampere on; on the CPU, AVX512-BF16 or AMX).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # name: (backbone args, input size, stored frame (height, width), fine-tuning steps timed, extraction frames)
    "demo": ({"width_multiplier": 0.25}, 32, (32, 32), 20, 4096),
    "paper": ({}, 224, (256, 341), 3, 128),
}
CLASSES = 48


def build(folder: Path, size: str, batch: int, warmup: int):
    """Frame stores (a training and a test video, the extraction's frames in all) and a dataset."""
    import numpy as np

    from pipeline.data.dataset import Dataset, Split, Video
    from pipeline.features.frame_batches import SplitFrames

    _, _, (height, width), steps, extract_frames = SIZES[size]
    rng = np.random.default_rng(0)
    train_length = max((warmup + steps + 1) * batch, extract_frames - batch)
    lengths = {"P01_train": train_length, "P02_test": max(batch, extract_frames - train_length)}
    for name, length in lengths.items():
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (length, height, width, 3), dtype=np.uint8))
    dataset = Dataset("bench", [f"class{i}" for i in range(CLASSES)],
                      {n: Video(n, n[:3], rng.integers(0, CLASSES, length)) for n, length in lengths.items()},
                      fps=15.0, splits=[Split(train=["P01_train"], test=["P02_test"])])
    return SplitFrames(dataset, 1, folder), sum(lengths.values())


def finetune_rate(frames, folder: Path, size: str, batch: int, warmup: int, device: str, workers: int,
                  precision: str) -> tuple[float, Path]:
    from pipeline.features.finetune import FinetuneConfig, finetune

    backbone_args, input_size, _, steps, _ = SIZES[size]
    total = warmup + steps + 1
    config = FinetuneConfig(backbone_args=backbone_args, input_size=input_size, epochs=1, batch_size=batch,
                            frames_per_epoch=total * batch, eval_stride=10**9, checkpoint_every=10**9,
                            device=device, precision=precision, workers=workers)
    times = {}
    output = folder / f"finetune-{workers}-{precision}"
    shutil.rmtree(output, ignore_errors=True)  # a run from scratch, not a resumed one
    model_path = finetune(frames, config, output, on_step=lambda done: times.__setitem__(done, time.perf_counter()))
    return batch * steps / (times[warmup + steps] - times[warmup]), model_path


def extract_rate(frames, model_path: Path, folder: Path, count: int, batch: int, device: str, workers: int,
                 precision: str) -> float:
    from pipeline.features.extract import extract_logits

    start = time.perf_counter()
    extract_logits(frames, model_path, folder / "logits.h5", batch_size=batch, device=device, precision=precision,
                   workers=workers)
    return count / (time.perf_counter() - start)


def bf16_supported(device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), help="default: paper on CUDA, demo on the CPU")
    parser.add_argument("--threads", nargs="+", type=int, help="PyTorch threads of this process (default: as set)")
    parser.add_argument("--workers", nargs="+", type=int, help="loader processes (default: 0 and 4 on CUDA, 0 and 2 "
                                                               "on the CPU)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=32, help="frames per step and per extraction batch")
    parser.add_argument("--warmup", type=int, default=2, help="fine-tuning steps before the timed ones")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads:  # before torch starts its thread pool
        os.environ["OMP_NUM_THREADS"] = str(max(args.threads))
    import torch

    from pipeline.device import select_device

    device = select_device(args.device)
    cuda = device.type == "cuda"
    sizes = args.sizes or (["paper"] if cuda else ["demo"])
    threads = args.threads or [torch.get_num_threads()]
    workers = args.workers or ([0, 4] if cuda else [0, 2])
    precisions = [p for p in args.precisions if p == "fp32" or bf16_supported(device)]
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            frames, count = build(folder, size, args.batch, args.warmup)
            configs = [(t, w, p) for t in threads for w in workers for p in precisions]
            best: dict = {c: [0.0, 0.0] for c in configs}
            torch.set_num_threads(threads[0])
            _, model_path = finetune_rate(frames, folder, size, args.batch, args.warmup, args.device, 0, "fp32")
            extract_rate(frames, model_path, folder, count, args.batch, args.device, 0, "fp32")  # warm-up
            for _ in range(args.repeats):
                for config in configs:
                    number, loaders, precision = config
                    torch.set_num_threads(number)
                    rate, model_path = finetune_rate(frames, folder, size, args.batch, args.warmup, args.device,
                                                     loaders, precision)
                    best[config][0] = max(best[config][0], rate)
                    rate = extract_rate(frames, model_path, folder, count, args.batch, args.device, loaders, precision)
                    best[config][1] = max(best[config][1], rate)
                    print(size, config, [f"{x:.1f}" for x in best[config]], file=sys.stderr, flush=True)
            rows += [(size, *config, *best[config]) for config in configs]
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {os.cpu_count()} cores"
    print(f"torch {torch.__version__}, {name}, batch {args.batch}, best of {args.repeats}")
    print("| size | input | threads | workers | precision | fine-tuning images/s | extraction images/s |")
    print("|---|---|---|---|---|---|---|")
    for size, number, loaders, precision, train, extract in rows:
        print(f"| {size} | {SIZES[size][1]} | {number} | {loaders} | {precision} | {train:.1f} | {extract:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
