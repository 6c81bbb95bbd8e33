"""Command lines of trained models on new recordings: `ddlstm export | predict | stream`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def export_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ddlstm export",
        description="Write a finished recurrent run, with the frame classifiers and boundary models of its datasets, "
                    "as one bundle file for `predict` and `stream`. Per dataset of the run, in its order, one "
                    "--inputs file, --frame-classifiers file, --boundary folder and --dataset-specs entry.")
    parser.add_argument("--run", required=True, help="the run's folder (config.json, checkpoint.pt, metrics.csv)")
    parser.add_argument("--inputs", nargs="+", required=True, help="each dataset's logits with the boundary (inputs.h5)")
    parser.add_argument("--frame-classifiers", nargs="+", required=True,
                        help="each dataset's frame classifier: finetune/model.pt or linear/model.pt")
    parser.add_argument("--boundary", nargs="+", required=True,
                        help="each dataset's boundary work folder (holding all/checkpoint.pt)")
    parser.add_argument("--dataset-specs", nargs="+", required=True,
                        help="each dataset's spec (inline JSON or a file, as --dataset of the other steps)")
    parser.add_argument("--fps", type=float, required=True, help="the frame rate the workflow ran at (frames.fps)")
    parser.add_argument("--frame-size", help="the decoded frames' size (frames.size: a short side or HxW)")
    parser.add_argument("--extract-batch", type=int, default=64, help="the extraction's batch size")
    parser.add_argument("--tolerance-frames", type=int, default=10)
    parser.add_argument("--tolerance-fraction", type=float, default=0.02)
    parser.add_argument("--workflow-config", default="", help="the workflow configuration, as JSON, to keep with it")
    parser.add_argument("--output", required=True, help="the bundle to write (.ddlstm)")
    args = parser.parse_args(argv)
    from ..data.cli import _parse_size
    from ..data.precomputed import FeatureSource
    from ..data.readers import load_dataset, read_spec
    from .bundle import export_bundle

    specs = [read_spec(spec) for spec in args.dataset_specs]
    config = json.loads((Path(args.run) / "config.json").read_text()) if (Path(args.run) / "config.json").is_file() \
        else {}
    sources = None
    if config.get("inputs") == "features":
        sources = [FeatureSource(load_dataset(spec), args.fps, args.tolerance_frames, args.tolerance_fraction)
                   if spec.get("features") or (spec.get("format") == "mstcn" and not spec.get("videos")) else None
                   for spec in specs]
    size = _parse_size(args.frame_size)
    path = export_bundle(args.run, args.inputs, args.frame_classifiers, args.boundary, specs, args.fps, args.output,
                         list(size) if isinstance(size, tuple) else size, args.extract_batch, sources,
                         args.workflow_config)
    print(f"wrote {path}")
    return 0


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a bundle (.ddlstm) written by `ddlstm export` or the workflow")
    parser.add_argument("--dataset", required=True, help="which of the bundle's datasets the input comes from")
    parser.add_argument("--lookahead", action="store_true",
                        help="the model was trained with look-ahead: classify each frame once half a history of "
                             "later frames is in (only for such a bundle)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', ...")


def _predictor(args):
    from ..device import select_device
    from .bundle import load_bundle
    from .predict import Predictor

    return Predictor(load_bundle(args.model), args.dataset, select_device(args.device), args.lookahead)


def predict_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ddlstm predict",
        description="Label every frame of new recordings with a bundle's model, online as the workflow evaluates: per "
                    "input <output>/<name>.txt (one label per frame at the input's rate, MS-TCN's layout) and "
                    "<name>.segments.csv (start, end, label, mean confidence).")
    _model_arguments(parser)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="videos, frame stores (.npy of uint8 frames, .h5) or features arrays (.npy, D x T), "
                             "what the bundle's dataset was trained from")
    parser.add_argument("--output", required=True, help="folder for the .txt and .segments.csv files")
    args = parser.parse_args(argv)
    from .predict import predict_files

    predict_files(_predictor(args), args.inputs, args.output)
    return 0


def stream_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ddlstm stream",
        description="Label frames one at a time as they are read (a video as it is decoded, a frame store or the "
                    "rows of a features array), each as soon as it is in, with memory bounded by the model's history: "
                    "lines `frame<TAB>label<TAB>confidence` (frames at the bundle's rate, from 0); frames/s and the "
                    "per-frame latency at the end, on stderr.")
    _model_arguments(parser)
    parser.add_argument("input", metavar="INPUT", help="a video, a frame store or a features array")
    parser.add_argument("--output", help="a file for the lines (default: stdout), each written as it is out")
    args = parser.parse_args(argv)
    from .stream import stream

    predictor = _predictor(args)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") if args.output else contextlib.nullcontext(sys.stdout) as out:

        def emit(label):
            out.write(f"{label.frame}\t{label.name}\t{label.confidence:.4f}\n")
            out.flush()

        summary = stream(predictor, args.input, emit)
    print(f"[stream] {summary['frames']} frames in {summary['seconds']} s: {summary['frames_per_s']} frames/s, latency "
          f"median {summary['latency_ms_median']} ms, 95th percentile {summary['latency_ms_p95']} ms",
          file=sys.stderr)
    return 0
