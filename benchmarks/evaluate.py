"""Online evaluation speed: every frame of a video classified from the window ending at it.

Batched (`predict_video`: windows of one video through the network `--eval-batch` at a time)
against the plain loop that runs one window per frame. Paper-size DDLSTM (3 layers, 128 units,
history 200, 100 input features, evaluation mode), one video of `--frames` frames; the loop is
timed on its first `--loop-frames` frames and reported per frame.

    python benchmarks/evaluate.py
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from pipeline.training.classifier import SequenceClassifier
from pipeline.training.config import RecurrentConfig
from pipeline.training.evaluation import predict_video
from pipeline.training.windows import gather_windows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="video length (Breakfast's mean is 2097)")
    parser.add_argument("--loop-frames", type=int, default=40)
    parser.add_argument("--eval-batch", type=int, default=512)
    args = parser.parse_args(argv)
    config = RecurrentConfig(layers=3, hidden=128, history=200, eval_batch=args.eval_batch)
    torch.manual_seed(0)
    model = SequenceClassifier("ddlstm", 100, 98, config, 2)
    with torch.no_grad():
        model(torch.randn(32, 200, 100), domain_sizes=[16, 16])  # population statistics
    model.eval()
    features = np.random.default_rng(0).normal(size=(args.frames, 100)).astype(np.float32)
    block = slice(0, 48)
    start = time.perf_counter()
    predict_video(model, features, block, 0, config, "cpu")
    batched = args.frames / (time.perf_counter() - start)
    start = time.perf_counter()
    with torch.no_grad():
        for frame in range(args.loop_frames):
            x, mask = gather_windows(features, np.array([frame + 500]), config.history)
            model(torch.from_numpy(x), domain=0, mask=torch.from_numpy(mask))
    loop = args.loop_frames / (time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; DDLSTM 3x128, history 200")
    print("| method | frames/s | seconds for a 2,000-frame video |")
    print("|---|---|---|")
    for name, rate in ((f"batched, {args.eval_batch} windows per forward", batched), ("one window per frame", loop)):
        print(f"| {name} | {rate:.0f} | {2000 / rate:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
