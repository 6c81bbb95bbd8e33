"""Command lines of the frame-classifier stage: `ddlstm finetune | extract` for datasets
read from videos, `linear` for datasets read from precomputed features, and `none-row`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.cli import dataset_arguments, dataset_from, feature_arguments, feature_source
from ..options import add_options, add_restart_option, config_from


def _split_arguments(parser):
    dataset_arguments(parser)
    parser.add_argument("--split", type=int, required=True, help="split number, from 1")
    parser.add_argument("--frames", required=True, help="folder of the dataset's frame stores")
    parser.add_argument("--store", choices=["npy", "h5"], default="npy", help="frame store format")
    parser.add_argument("--fps", type=float, help="the rate the frames were decoded at (default: the labels' rate)")


def _split_frames(args):
    from .frame_batches import SplitFrames

    return SplitFrames(dataset_from(args), args.split, args.frames, args.store, args.fps)


def finetune_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm finetune",
                                     description="Fine-tune the frame classifier on one split's training frames; "
                                                 "resumes from <output-dir>/checkpoint.pt if present.")
    from .finetune import FinetuneConfig

    _split_arguments(parser)
    parser.add_argument("--output-dir", required=True, help="folder for model.pt, checkpoint.pt, metrics.csv")
    add_options(parser, FinetuneConfig)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    config = config_from(args, FinetuneConfig)
    from .finetune import finetune

    finetune(_split_frames(args), config, args.output_dir, restart_on_change=args.restart_on_change)
    return 0


def extract_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm extract",
                                     description="Write the logits of every frame of a split (train and test videos) "
                                                 "to one HDF5 file (layout: pipeline/features/logits.py).")
    _split_arguments(parser)
    parser.add_argument("--model", required=True, help="model.pt written by `ddlstm finetune`")
    parser.add_argument("--output", required=True, help="HDF5 file to write")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (default: 64)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', ...")
    from .frame_batches import PRECISION_HELP, PRECISIONS, WORKERS_HELP

    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help=f"{PRECISION_HELP} (default: auto)")
    parser.add_argument("--workers", type=int, default=None, help=f"{WORKERS_HELP} (default: None)")
    args = parser.parse_args(argv)
    from .extract import extract_logits

    extract_logits(_split_frames(args), args.model, args.output, args.batch_size, args.device, args.precision,
                   args.workers)
    return 0


def none_row_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm none-row",
                                     description="Frame accuracy of argmax(logits) on a split's test videos "
                                                 "(the paper's 'None' row), as JSON.")
    parser.add_argument("--logits", required=True, help="HDF5 logits file of one split")
    parser.add_argument("--output", help="JSON file to write (default: print only)")
    args = parser.parse_args(argv)
    from .logits import frame_accuracy  # h5py and numpy only: no torch to import for this small step

    result = frame_accuracy(args.logits)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


def linear_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm linear",
                                     description="Fit the linear frame classifier on one split's training features "
                                                 "and write the logits of every video of the split to HDF5 (the "
                                                 "layout of pipeline/features/logits.py).")
    feature_arguments(parser)
    parser.add_argument("--split", type=int, required=True, help="split number, from 1")
    parser.add_argument("--output", required=True, help="HDF5 logits file to write")
    parser.add_argument("--work-dir", required=True, help="folder for model.pt and metrics.json")
    from .linear import LinearConfig

    add_options(parser, LinearConfig)
    args = parser.parse_args(argv)
    from .linear import train_and_extract

    dataset, source = feature_source(args)
    train_and_extract(dataset, args.split, source, config_from(args, LinearConfig), args.output, args.work_dir)
    return 0
