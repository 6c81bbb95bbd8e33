"""Command lines of the joint frame classifier (docs/studies/joint-cnn.md): `ddlstm finetune-joint` (two
datasets read from videos: one dual-domain CNN) and `linear-joint` (two datasets read from features: a
dual-domain BN and a linear head each). `extract` writes either dataset's logits
from a joint CNN's model.pt, as from a per-dataset one."""

from __future__ import annotations

import argparse

from ..data.cli import read_dataset, tolerance_arguments
from ..options import add_options, add_restart_option, config_from


def _datasets_argument(parser):
    parser.add_argument("--datasets", nargs=2, required=True, metavar="SPEC",
                        help="the two datasets' specs (inline JSON or a JSON/YAML file each), dataset 1 first")
    parser.add_argument("--split", type=int, required=True, help="split number, from 1")


def finetune_joint_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm finetune-joint",
                                     description="Fine-tune one frame classifier on two datasets' training frames at "
                                                 "once, its batch normalisation dual-domain and a head per dataset; "
                                                 "resumes from <output-dir>/checkpoint.pt if present.")
    _datasets_argument(parser)
    parser.add_argument("--frames", nargs=2, required=True, metavar="DIR",
                        help="the folders of the two datasets' frame stores, in --datasets order")
    parser.add_argument("--store", choices=["npy", "h5"], default="npy", help="frame store format")
    parser.add_argument("--fps", type=float, help="the rate the frames were decoded at (default: the labels' rate)")
    parser.add_argument("--output-dir", required=True, help="folder for model.pt, checkpoint.pt, metrics.csv, alphas.csv")
    from .joint import JointFinetuneConfig

    add_options(parser, JointFinetuneConfig)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    config = config_from(args, JointFinetuneConfig)
    from .frame_batches import SplitFrames
    from .joint import finetune_joint

    frames = [SplitFrames(read_dataset(spec), args.split, folder, args.store, args.fps)
              for spec, folder in zip(args.datasets, args.frames)]
    finetune_joint(frames, config, args.output_dir, restart_on_change=args.restart_on_change)
    return 0


def linear_joint_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm linear-joint",
                                     description="Fit one classifier on two datasets' training features at once (a "
                                                 "dual-domain BN of the features, a linear head per dataset) and write "
                                                 "each dataset's logits of every video of the split to HDF5.")
    _datasets_argument(parser)
    parser.add_argument("--fps", type=float, help="resample features and labels to this rate (default: the labels' rate)")
    tolerance_arguments(parser, "an array")
    parser.add_argument("--outputs", nargs=2, required=True, metavar="H5",
                        help="the two datasets' logits files to write, in --datasets order")
    parser.add_argument("--work-dir", required=True, help="folder for model.pt, metrics.json and alphas.csv")
    from .joint_linear import JointLinearConfig

    add_options(parser, JointLinearConfig)
    args = parser.parse_args(argv)
    from ..data.precomputed import FeatureSource
    from .joint_linear import train_and_extract_joint

    datasets = [read_dataset(spec) for spec in args.datasets]
    sources = [FeatureSource(dataset, args.fps, args.tolerance_frames, args.tolerance_fraction) for dataset in datasets]
    train_and_extract_joint(datasets, args.split, sources, config_from(args, JointLinearConfig), args.outputs,
                            args.work_dir)
    return 0
