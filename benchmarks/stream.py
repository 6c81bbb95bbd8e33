"""`ddlstm stream`'s speed: frames/s and per-frame latency of frame-at-a-time recognition, at the demo's
and the paper's model sizes, from precomputed features (the recurrent part and the linear classifier)
and from a video (decoding and the BN-Inception frame classifier too).

Each frame is classified as soon as it is in, from the window of `history` frames that ends at it
(`pipeline.inference.stream`): a frame costs one window of the recurrent model and one of the boundary
LSTM, whatever the video's length. The models are untrained (the speed does not depend on the
weights), in a bundle built here in memory with the shapes a workflow run of that size exports.

    python benchmarks/stream.py                       # demo and paper, features and video, 1 and 2 threads
    python benchmarks/stream.py --sizes paper --inputs features --threads 1 --frames 300

Sizes: "demo" is the default workflow's (3 layers of 32 units, history 24, boundary LSTM of 16 units
over 24 frames, 64-d features, 20 classes, BN-Inception at width 0.25 on 32 px frames); "paper" the
paper's (3 layers of 128 units, history 200, boundary LSTM of 128 units over 200 frames, 2048-d I3D
features, 48 classes, the full BN-Inception on 224 px crops of frames with a 256 px short side).
Real time for the datasets is 15 frames/s (Breakfast, and every dataset after the workflow resamples).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

SIZES = {
    # name: (layers, hidden, history, boundary hidden, boundary history, feature dim, classes, backbone args,
    #        input size, stored frame short side, video (height, width))
    "demo": (3, 32, 24, 16, 24, 64, 20, {"width_multiplier": 0.25}, 32, 32, (64, 64)),
    "paper": (3, 128, 200, 128, 200, 2048, 48, {}, 224, 256, (240, 320)),
}
FPS = 15.0


def synthetic_bundle(size: str, source: str, folder: Path):
    """A Bundle of untrained models of one size, for one dataset read from `source` (videos or features)."""
    from pipeline.features.linear import LinearClassifier
    from pipeline.inference.bundle import FORMAT, FORMAT_VERSION, Bundle
    from pipeline.training.boundary import BoundaryLSTM
    from pipeline.training.classifier import SequenceClassifier
    from pipeline.training.config import RecurrentConfig

    layers, hidden, history, b_hidden, b_history, dim, classes, backbone_args, input_size, short, _ = SIZES[size]
    torch.manual_seed(0)
    config = RecurrentConfig(protocol="joint", model="ddlstm", layers=layers, hidden=hidden, history=history,
                             device="cpu")
    recurrent_inputs = classes + 2  # the dataset's logits in its own block (one dataset here) and the boundary
    recurrent = SequenceClassifier("ddlstm", recurrent_inputs, classes, config, 2)
    if source == "features":
        classifier = {"kind": "linear", "state": LinearClassifier(dim, classes).state_dict(), "dim": dim,
                      "feature_layout": "auto"}
    else:
        from pipeline.features.backbone import create_backbone

        model = create_backbone("bninception", classes, **backbone_args)
        classifier = {"kind": "cnn", "state": model.state_dict(), "backbone": "bninception",
                      "backbone_args": backbone_args, "input_size": input_size, "mean": list(model.pretrained_cfg["mean"]),
                      "std": list(model.pretrained_cfg["std"]), "frame_size": short, "batch_size": 64,
                      "precision": "fp32"}
    part = {"index": 0, "class_names": [f"c{k}" for k in range(classes)], "background": None, "label_fps": FPS,
            "source": source, "frame_classifier": classifier,
            "logits_standardisation": {"mean": torch.zeros(classes), "std": torch.ones(classes)},
            "boundary": {"state": BoundaryLSTM(classes, b_hidden, b_history).state_dict(), "hidden": b_hidden,
                         "history": b_history, "eval_batch": 256},
            "inputs": "logits", "feature_standardisation": None}
    content = {"format": FORMAT, "format_version": FORMAT_VERSION, "project_version": "benchmark",
               "run": {"folder": "", "config": vars(config) | {"datasets": ["bench split 1"]}, "datasets": ["bench"]},
               "workflow_config": "", "frames": {"fps": FPS},
               "recurrent": {"state": recurrent.state_dict(), "input_size": recurrent_inputs, "num_labels": classes,
                             "num_domains": 2, "layout": {"offsets": [0], "input_offsets": [0], "widths": [classes],
                                                          "logit_columns": classes, "boundary": True}},
               "datasets": {"bench": part}}
    return Bundle(folder / f"{size}-{source}.ddlstm", content)


def input_file(size: str, source: str, frames: int, folder: Path) -> Path:
    """A features array (D x T) or an MPEG-4 video of random frames to stream."""
    rng = np.random.default_rng(0)
    if source == "features":
        path = folder / f"{size}.npy"
        np.save(path, rng.normal(size=(SIZES[size][5], frames)).astype(np.float32))
        return path
    from pipeline.data.videos import write_video

    height, width = SIZES[size][10]
    path = folder / f"{size}.mp4"
    write_video(path, rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8), FPS, codec="mpeg4")
    return path


def measure(size: str, source: str, frames: int, threads: int, device: str, folder: Path) -> dict:
    from pipeline.inference.predict import Predictor
    from pipeline.inference.stream import stream

    torch.set_num_threads(threads)
    predictor = Predictor(synthetic_bundle(size, source, folder), "bench", device)
    path = input_file(size, source, frames, folder)
    stream(predictor, input_file(size, source, min(frames, 30), folder / "warm"), lambda label: None)  # warm
    return stream(predictor, path, lambda label: None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "paper"])
    parser.add_argument("--inputs", nargs="+", choices=("features", "video"), default=["features", "video"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--frames", type=int, default=300, help="frames streamed per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    print(f"| size | input | device | threads | frames | frames/s | latency median ms | latency p95 ms | real time "
          f"({FPS:g} fps) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "warm").mkdir()
        for size in args.sizes:
            for source in args.inputs:
                for threads in args.threads if args.device == "cpu" else [args.threads[0]]:
                    found = measure(size, source, args.frames, threads, args.device, folder)
                    real = "yes" if found["frames_per_s"] >= FPS and found["latency_ms_p95"] <= 1000 / FPS else "no"
                    print(f"| {size} | {source} | {args.device} | {threads} | {found['frames']} | "
                          f"{found['frames_per_s']:.1f} | {found['latency_ms_median']:.1f} | "
                          f"{found['latency_ms_p95']:.1f} | {real} |", flush=True)


if __name__ == "__main__":
    main()
