"""What one recurrent run is: the protocol, the model, the schedule and every reading of the paper,
as one dataclass whose fields are the `train` command's options (docs/method.md §5-7).

The readings where the paper is terse (docs/method.md §7 and README "Readings of the paper"):

- `eval_labels`: a test frame is classified by the argmax over the whole concatenated vector
  ("all": a label of the other dataset counts as wrong; the only reading under which the paper's
  pre-train / fine-tune rows can collapse to 0) or over its own dataset's block ("own").
- `input_layout`: dataset i's standardised logits fill its own block of the input vector, zeros
  elsewhere ("blocks"), or every dataset's fill the same leading columns ("shared").
- `inputs` (beyond the paper): the logits (the paper's input), or a dataset's precomputed features
  themselves (`inputs.py`), optionally through a learned projection (`input_projection`).
- `short_windows`: where the frames of a window shorter than the history sit (`windows.py`).
- `population_batches`: the statistics evaluation normalises with (`evaluation.py`).
- `loss_reduction`: the cross-entropy averaged over every scored frame of the batch ("frames"), or
  summed over each window's frames and averaged over windows ("windows", the sequence loss of much
  2019 code: its gradient is about `history` times the frame mean's, so the same learning rate
  takes steps that much larger).
- `optimizer`: plain SGD (with `momentum`) or Adam, at `lr`: "a learning rate of 0.01" names no
  optimiser.

Beyond the paper (its future work B): `domain_share` "adaptive" lets each joint batch's makeup follow
the datasets' training losses during the run, within `share_min` of 0 and 1 (`makeup.py`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..optim import OPTIMIZERS
from ..options import option
from .windows import ALIGNMENTS

PROTOCOLS = ("single", "joint", "pretrain_finetune")
MODELS = ("lstm", "bnlstm", "ddlstm")
EVAL_LABELS = ("all", "own")
INPUT_LAYOUTS = ("blocks", "shared")
INPUTS = ("logits", "features")
LOSS_REDUCTIONS = ("frames", "windows")
ADAPTIVE = "adaptive"  # domain_share: the makeup of every joint batch adapted during training (makeup.py)


def share_value(text: str) -> float | str:
    """`--domain-share`: a fraction of the batch, or "adaptive"."""
    if text == ADAPTIVE:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fraction in (0, 1) or {ADAPTIVE!r}, not {text!r}") from None


@dataclass
class RecurrentConfig:
    protocol: str = option(
        "joint",
        "single, joint or pretrain_finetune (pre-trains on the first --inputs file)", choices=PROTOCOLS)
    model: str = option("ddlstm", "lstm, bnlstm or ddlstm", choices=MODELS)
    layers: int = option(3, "recurrent layers (1..10)")
    hidden: int = option(128, "units per layer")
    history: int = option(200, "window length in frames")
    lookahead: bool = option(
        False,
        "windows also hold history // 2 future frames (the paper's look-ahead tables)")
    eval_labels: str = option(
        "all",
        "all: a test frame takes the argmax over every dataset's labels (another dataset's counts as "
        "wrong); own: the argmax over its own dataset's labels", choices=EVAL_LABELS)
    inputs: str = option(
        "logits",
        "logits: every dataset feeds its frame classifier's logits (the paper); features: a dataset read from "
        "precomputed features feeds its standardised feature vectors (--feature-sources)", choices=INPUTS,
        flag="--inputs-from")  # --inputs names the run's input files
    input_projection: int = option(
        0, "a learned linear projection of the input to this many dimensions before the first layer (0: none)")
    input_layout: str = option(
        "blocks",
        "blocks: each dataset's inputs in columns of their own; shared: in the same columns, zero-padded to the "
        "widest", choices=INPUT_LAYOUTS)
    short_windows: str = option(
        "end",
        "end: a window shorter than the history sits at the last timesteps after padding; start: from "
        "timestep 0, padding after it", choices=ALIGNMENTS)
    batch_size: int = option(128, "windows per step, all datasets together when joint")
    domain_share: float | str = option(
        0.5,
        "joint, two datasets: fraction of each batch from the first (three or more share it evenly); adaptive: "
        "every dataset's share follows its relative training loss during the run (pairs and groups)",
        parse=share_value)
    share_min: float = option(
        0.1, "with --domain-share adaptive: the least share of the batch any dataset gets (each share in "
             "[share_min, 1 - (d - 1) share_min] for d datasets)")
    share_ema: float = option(
        0.9, "with --domain-share adaptive: smoothing of each dataset's training loss (exponential moving average "
             "weight of the past, in [0, 1))")
    iterations: int = option(50_000, "training steps (per phase for pretrain_finetune)")
    optimizer: str = option(
        "sgd",
        "sgd (with --momentum) or adam (betas 0.9, 0.999); the paper names neither", choices=OPTIMIZERS)
    lr: float = option(0.01, "learning rate")
    momentum: float = option(0.0, "SGD momentum (the paper gives none: 0); must be 0 with adam")
    loss_reduction: str = option(
        "frames",
        "frames: cross-entropy averaged over every scored frame of the batch; windows: summed over each "
        "window's frames, averaged over windows (gradients ~history times larger)", choices=LOSS_REDUCTIONS)
    alpha_init: float = option(0.75, "initial value of every DDLSTM alpha")
    alpha_lr_scale: float = option(1.0, "the alphas' learning rate is lr times this")
    learnable_affine: bool = option(
        False,
        "learn the BNs' gamma and beta (the paper fixes them at 0.1 and 0)")
    clip_grad_norm: float = option(0.0, "gradient norm limit (0: none, as in the paper)")
    checkpoint_every: int = option(1000, "steps between checkpoints")
    log_every: int = option(100, "steps between rows of train_log.csv and alphas.csv")
    eval_every: int = option(
        0,
        "steps between evaluations on the test videos during training (0: only at the end)")
    population_batches: int = option(
        50,
        "before each evaluation, the BN models' population statistics are the average over this many training "
        "batches of the current weights (0: the running averages training kept)")
    eval_batch: int = option(512, "windows per forward pass in evaluation")
    cuda_graphs: bool = option(
        True, "on CUDA, replay each training step as a captured CUDA graph (no effect on the CPU)")
    seed: int = option(0, "random seed: the same seed and configuration give the same model and metrics")
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', ...")

    @property
    def lookahead_frames(self) -> int:
        return self.history // 2 if self.lookahead else 0

    @property
    def adaptive_share(self) -> bool:
        """A joint run whose batch makeup adapts during training (`makeup.py`)."""
        return self.protocol == "joint" and self.domain_share == ADAPTIVE

    @property
    def total_iterations(self) -> int:
        """Training steps of the whole run: `iterations` per phase, two phases for pretrain_finetune."""
        return self.iterations * (2 if self.protocol == "pretrain_finetune" else 1)

    def check(self, datasets: int) -> None:
        """The run's options against each other and against the number of datasets it trains on."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")
        wanted = {"single": "1", "joint": "2 or more", "pretrain_finetune": "2"}[self.protocol]
        if not (datasets >= 2 if self.protocol == "joint" else str(datasets) == wanted):
            raise ValueError(f"protocol {self.protocol!r} takes {wanted} dataset(s), got {datasets}")
        if self.adaptive_share:
            if not 0 < self.share_min < 1 / datasets:
                raise ValueError(f"share_min must lie in (0, 1/{datasets}) for {datasets} datasets (every dataset gets "
                                 f"at least that share), got {self.share_min}")
            if self.share_min * self.batch_size < 1:
                raise ValueError(f"share_min {self.share_min} of a batch of {self.batch_size} is less than one window: "
                                 f"raise share_min to at least {1 / self.batch_size:.3g} or the batch size")
            if not 0 <= self.share_ema < 1:
                raise ValueError(f"share_ema must lie in [0, 1), got {self.share_ema}")
        elif self.protocol == "joint" and (isinstance(self.domain_share, str) or not 0 < self.domain_share < 1):
            raise ValueError(f"domain_share must lie in (0, 1) or be {ADAPTIVE!r}, got {self.domain_share!r}")
        for name, allowed in (("eval_labels", EVAL_LABELS), ("input_layout", INPUT_LAYOUTS),
                              ("short_windows", ALIGNMENTS), ("loss_reduction", LOSS_REDUCTIONS),
                              ("optimizer", OPTIMIZERS), ("inputs", INPUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.input_projection < 0:
            raise ValueError(f"input_projection must be >= 0 (0: none), got {self.input_projection}")
        if self.optimizer == "adam" and self.momentum:
            raise ValueError(f"momentum {self.momentum} is an SGD setting; set momentum 0 with optimizer adam")
