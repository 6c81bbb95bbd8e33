"""Command lines of the recurrent stage: `ddlstm boundary | train`."""

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
        prog="ddlstm boundary",
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


def _feature_source(spec: str, fps: float, args):
    from ..data.precomputed import FeatureSource
    from ..data.readers import load_dataset, read_spec

    return FeatureSource(load_dataset(read_spec(spec)), fps, args.tolerance_frames, args.tolerance_fraction)


def train_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="ddlstm train",
        description="Train LSTM / BNLSTM / DDLSTM under one protocol on one split of one or two datasets, "
                    "then evaluate every test frame online; resumes from <output-dir>/checkpoint.pt.")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="HDF5 input files (logits, with boundary), one per dataset, same split number "
                             "(joint: two, or three or more for a group)")
    parser.add_argument("--output-dir", required=True,
                        help="folder for checkpoint.pt, metrics.csv, videos.csv, alphas.csv, predictions.npz")
    parser.add_argument("--feature-sources", nargs="+", metavar="SPEC_OR_-",
                        help="with --inputs features: per --inputs file, the dataset's spec (inline JSON or a file, "
                             "as --dataset of check-features) to read its precomputed features, or - for a dataset "
                             "that feeds its logits")
    parser.add_argument("--fps", type=float, help="the rate of the inputs files, to which features are resampled")
    parser.add_argument("--tolerance-frames", type=int, default=10,
                        help="frames a feature array may differ from its labels (default: 10)")
    parser.add_argument("--tolerance-fraction", type=float, default=0.02,
                        help="... or this fraction of its label count, whichever is larger (default: 0.02)")
    add_options(parser, RecurrentConfig)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    splits = [load_split(path) for path in args.inputs]
    sources = None
    if args.feature_sources:
        if len(args.feature_sources) != len(args.inputs):
            parser.error(f"--feature-sources needs one entry per --inputs file ({len(args.inputs)}), "
                         f"got {len(args.feature_sources)}")
        sources = [None if spec == "-" else _feature_source(spec, args.fps or split.fps, args)
                   for spec, split in zip(args.feature_sources, splits)]
    results = train_recurrent(splits, config_from(args, RecurrentConfig), args.output_dir,
                              restart_on_change=args.restart_on_change, feature_sources=sources)
    print(json.dumps(results, indent=2))
    return 0
