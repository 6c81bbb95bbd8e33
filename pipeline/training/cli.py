"""Command lines of the recurrent stage: `python -m pipeline boundary | train`."""

from __future__ import annotations

import argparse
import json

from ..options import add_options, add_restart_option, config_from
from .boundary import BoundaryConfig, boundary_predictions, write_with_boundary
from .recurrent import PROTOCOLS, RecurrentConfig, train_recurrent
from .sequences import load_split

BOUNDARY_HELP = {
    "history": "window length and horizon of the boundary distance, in frames",
    "hidden": "LSTM units",
    "target_std": "standard deviation of the target Gaussian at the next boundary, in frames",
    "batch_size": "windows per step",
    "iterations": "training steps",
    "lr": "SGD learning rate",
    "momentum": "SGD momentum",
    "clip_grad_norm": "gradient norm limit (0: none)",
    "checkpoint_every": "steps between checkpoints",
    "log_every": "steps between rows of train_log.csv",
    "eval_batch": "windows per forward pass when predicting every frame",
    "folds": "cross-fitting: K models each without one fold of the training videos (by participant) predict "
             "that fold, one model on all of them the test videos; 1: one model predicts every video",
    "seed": "random seed: the same seed and configuration give the same model",
    "device": "'auto' (CUDA when present), 'cpu', 'cuda', ...",
}
RECURRENT_HELP = {
    "protocol": f"one of {', '.join(PROTOCOLS)}; pretrain_finetune pre-trains on the first --inputs file",
    "model": "lstm, bnlstm or ddlstm",
    "layers": "recurrent layers (1..10)",
    "hidden": "units per layer",
    "history": "window length in frames",
    "lookahead": "windows also hold history // 2 future frames (the paper's look-ahead tables)",
    "eval_labels": "all: a test frame takes the argmax over every dataset's labels (another dataset's counts as "
                   "wrong); own: the argmax over its own dataset's labels",
    "input_layout": "blocks: each dataset's logits in input columns of its own; shared: in the same columns, "
                    "zero-padded to the larger",
    "short_windows": "end: a window shorter than the history sits at the last timesteps after padding; start: "
                     "from timestep 0, padding after it",
    "batch_size": "windows per step, both datasets together when joint",
    "domain_share": "joint: fraction of each batch from the first dataset",
    "iterations": "training steps (per phase for pretrain_finetune)",
    "lr": "SGD learning rate",
    "momentum": "SGD momentum (the paper gives none: 0)",
    "alpha_init": "initial value of every DDLSTM alpha",
    "alpha_lr_scale": "the alphas' learning rate is lr times this",
    "learnable_affine": "learn the BNs' gamma and beta (the paper fixes them at 0.1 and 0)",
    "clip_grad_norm": "gradient norm limit (0: none, as in the paper)",
    "checkpoint_every": "steps between checkpoints",
    "log_every": "steps between rows of train_log.csv and alphas.csv",
    "eval_every": "steps between evaluations on the test videos during training (0: only at the end)",
    "eval_batch": "windows per forward pass in evaluation",
    "seed": "random seed: the same seed and configuration give the same model and metrics",
    "device": "'auto' (CUDA when present), 'cpu', 'cuda', ...",
}



def boundary_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline boundary",
        description="Train the boundary-prediction LSTM on one split's training videos and write the "
                    "logits file again with each video's per-frame boundary prediction added.")
    parser.add_argument("--logits", required=True, help="HDF5 logits file of one dataset split")
    parser.add_argument("--output", required=True, help="HDF5 file to write: the logits plus `boundary`")
    parser.add_argument("--work-dir", required=True,
                        help="folder with one subfolder per model (all/, fold1/, ...) for checkpoint.pt and train_log.csv")
    add_options(parser, BoundaryConfig, BOUNDARY_HELP)
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
    add_options(parser, RecurrentConfig, RECURRENT_HELP)
    add_restart_option(parser)
    args = parser.parse_args(argv)
    results = train_recurrent([load_split(path) for path in args.inputs], config_from(args, RecurrentConfig),
                              args.output_dir, restart_on_change=args.restart_on_change)
    print(json.dumps(results, indent=2))
    return 0
