"""Command lines of the recurrent stage: `python -m pipeline boundary | train`."""

from __future__ import annotations

import argparse
import json

from ..options import add_options, add_restart_option, config_from
from .boundary import BoundaryConfig, boundary_predictions, write_with_boundary
from .config import RecurrentConfig
from .recurrent import train_recurrent
from .sequences import load_split


def boundary_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline boundary",
        description="Train the boundary-prediction LSTM on one split's training videos and write the "
                    "logits file again with each video's per-frame boundary prediction added.")
    parser.add_argument("--logits", required=True, help="HDF5 logits file of one dataset split")
    parser.add_argument("--output", required=True, help="HDF5 file to write: the logits plus `boundary`")
    parser.add_argument("--work-dir", required=True,
                        help="folder with one subfolder per model (all/, fold1/, ...) for checkpoint.pt and train_log.csv")
    add_options(parser, BoundaryConfig)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    config = config_from(args, BoundaryConfig)
    split = load_split(args.logits)
    predictions = boundary_predictions(split, config, args.work_dir, restart_on_change=args.restart_on_change)
    write_with_boundary(args.logits, predictions, args.output)
    return 0


def train_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline train",
        description="Train LSTM / BNLSTM / DDLSTM under one protocol on one split of one or two datasets, "
                    "then evaluate every test frame online; resumes from <output-dir>/checkpoint.pt.")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="HDF5 input files (logits, with boundary), one per dataset, same split number")
    parser.add_argument("--output-dir", required=True,
                        help="folder for checkpoint.pt, metrics.csv, videos.csv, alphas.csv, predictions.npz")
    add_options(parser, RecurrentConfig)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    results = train_recurrent([load_split(path) for path in args.inputs], config_from(args, RecurrentConfig),
                              args.output_dir, restart_on_change=args.restart_on_change)
    print(json.dumps(results, indent=2))
    return 0
