"""Fine-tuning the frame classifier on one split's training frames (docs/method.md §2).

Single frames with their frame-wise labels, cross-entropy, SGD with momentum and a cosine learning
rate over all steps, run by the training loop every step of the pipeline shares
(`pipeline.trainer.Trainer`). Resumable exactly: every step's frames, crops and dropout are
functions of (seed, epoch, step) alone, and `checkpoint.pt` (model, optimiser, position, metrics so
far, the epoch's running sums) is written every `checkpoint_every` steps and at every epoch's end,
so a killed run restarted with the same configuration continues to the same weights. Outputs in
`output_dir`:

    checkpoint.pt   the resumable state (kept after the run, for inspection)
    model.pt        the fine-tuned classifier and everything extraction needs to use it
    metrics.csv     one row per epoch: training loss and accuracy, test-frame accuracy, lr, time
    train_log.csv   the training loss every few steps
    config.json     the configuration of the run
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

from ..device import select_device
from ..io import save_torch, write_text
from ..optim import SGD
from ..options import option
from ..trainer import CheckpointError, Trainer, load_checkpoint
from .backbone import create_backbone
from .frame_batches import Preprocess, SplitFrames

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    backbone: str = option("bninception", "any timm model name")
    backbone_args: dict = option(  # noqa: RUF009 (option returns a dataclass field, copied per instance)
        {},
        "JSON object of extra timm.create_model arguments, e.g. '{\"width_multiplier\": 0.25}'")
    weights: str | None = option(
        None,
        "initial weights file (.pth/.pt/.safetensors); without it the network trains from scratch")
    reverse_channels: bool = option(
        False,
        "the weights expect BGR input (Caffe/TSN ports): reverse the first convolution's channels")
    input_size: int = option(224, "the network's square input size in pixels")
    epochs: int = option(2, "passes over the training frames")
    batch_size: int = option(32, "frames per step")
    frames_per_epoch: int | None = option(None, "random training frames per epoch (None: all)")
    lr: float = option(0.001, "peak learning rate (cosine decay to 0)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(5e-4, "SGD weight decay")
    eval_stride: int = option(5, "per-epoch test accuracy on every k-th test frame")
    checkpoint_every: int = option(200, "steps between checkpoints (and one at each epoch's end)")
    seed: int = option(0, "random seed: the same seed and configuration give the same weights")
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")

    def resumable_fields(self) -> dict:
        """What must match for a checkpoint to be continued (the device may change)."""
        values = asdict(self)
        values.pop("device")
        return values


def _epoch_sums() -> dict:
    """The running sums of one epoch's training loss, correct frames, frames and seconds."""
    return {"loss": 0.0, "correct": 0, "frames": 0, "seconds": 0.0}


@torch.no_grad()
def evaluate(model, frames: SplitFrames, preprocess: Preprocess, device, stride: int, batch_size: int) -> float:
    """Frame accuracy on every `stride`-th test frame."""
    model.eval()
    rows = frames.frame_index("test", stride)
    correct = 0
    for start in range(0, len(rows), batch_size):
        images, labels = frames.read(rows[start : start + batch_size])
        logits = model(preprocess(images).to(device))
        correct += int((logits.argmax(1).cpu() == torch.from_numpy(labels)).sum())
    return correct / max(1, len(rows))


def finetune(frames: SplitFrames, config: FinetuneConfig, output_dir: str | Path, on_step=None,
             restart_on_change: bool = False) -> Path:
    """Fine-tune on `frames`' training videos; returns the path of `model.pt`.

    `on_step(global_step)` is called after every optimiser step (a hook for tests and monitoring).
    A checkpoint of another configuration is an error, or with `restart_on_change` set aside as
    `checkpoint.stale.pt` (the workflow's choice when a changed parameter reruns the job).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    frames.check()
    device = select_device(config.device)
    torch.manual_seed(config.seed)  # the initial weights of everything not loaded from a file
    model = create_backbone(config.backbone, len(frames.class_names), config.weights,
                            reverse_channels=config.reverse_channels, **config.backbone_args).to(device)
    data_config = model.pretrained_cfg
    train_preprocess = Preprocess(config.input_size, data_config["mean"], data_config["std"], train=True)
    eval_preprocess = Preprocess(config.input_size, data_config["mean"], data_config["std"], train=False)
    optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    train_rows = frames.frame_index("train")
    per_epoch = len(train_rows) if config.frames_per_epoch is None else min(config.frames_per_epoch, len(train_rows))
    batch_size = min(config.batch_size, per_epoch)
    if batch_size < 2:
        raise ValueError(f"split {frames.split} of {frames.dataset.name!r} has {per_epoch} training frames; "
                         "batch normalisation needs batches of at least 2")
    steps_per_epoch = per_epoch // batch_size
    total_steps = steps_per_epoch * config.epochs

    trainer = Trainer(model, optimizer, output_dir, config.resumable_fields(), config.checkpoint_every,
                      f"fine-tune {frames.dataset.name} split {frames.split}")
    trainer.resume(restart_on_change)
    write_text(output_dir / "config.json", json.dumps(asdict(config), indent=2) + "\n")
    orders: dict[int, np.ndarray] = {}

    def step(global_step: int) -> float:
        epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        if epoch not in orders:
            orders[epoch] = np.random.default_rng([config.seed, epoch]).permutation(len(train_rows))[:per_epoch]
        order = orders[epoch]
        started = time.monotonic()
        rng = np.random.default_rng([config.seed, epoch, step_in_epoch])
        torch.manual_seed(int(rng.integers(2**62)))  # dropout
        images, labels = frames.read(train_rows[order[step_in_epoch * batch_size : (step_in_epoch + 1) * batch_size]])
        inputs, targets = train_preprocess(images, rng).to(device), torch.from_numpy(labels).to(device)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
        model.train()
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums = trainer.extra.setdefault("sums", _epoch_sums())
        sums["loss"] += loss.item() * len(labels)
        sums["correct"] += int((logits.argmax(1) == targets).sum())
        sums["frames"] += len(labels)
        sums["seconds"] += time.monotonic() - started
        if step_in_epoch + 1 == steps_per_epoch:  # the epoch's row of metrics.csv
            test_accuracy = evaluate(model, frames, eval_preprocess, device, config.eval_stride, batch_size)
            row = {"epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch,
                   "train_loss": sums["loss"] / sums["frames"], "train_accuracy": sums["correct"] / sums["frames"],
                   "test_accuracy": test_accuracy, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": round(sums["seconds"], 2)}
            trainer.log("metrics", row)
            log.info("epoch %d: %s", epoch + 1, row)
            trainer.extra["sums"] = _epoch_sums()  # metrics.csv is written with the epoch's checkpoint
        return loss.item()

    trainer.run(total_steps, step, on_step, log_every=max(1, min(50, steps_per_epoch)),
                checkpoint_also=lambda done: done % steps_per_epoch == 0)
    # Writes metrics.csv too, also when a finished run is restarted (its outputs deleted, its
    # checkpoint kept): the metrics come back from the checkpoint.
    trainer.save()
    model_path = output_dir / "model.pt"
    save_torch({"model": model.state_dict(), "backbone": config.backbone,
                "backbone_args": config.backbone_args, "input_size": config.input_size,
                "class_names": frames.class_names, "dataset": frames.dataset.name, "split": frames.split,
                "fps": frames.dataset.fps, "config": asdict(config)}, model_path)
    return model_path


def load_classifier(path: str | Path, device="cpu"):
    """The classifier saved by `finetune` and its saved description (`model.pt`)."""
    saved = load_checkpoint(path, "fine-tuned model")
    missing = {"model", "backbone", "backbone_args", "class_names", "input_size"} - set(saved)
    if missing:
        raise CheckpointError(f"{path}: not a fine-tuned model of this pipeline (it lacks {sorted(missing)})")
    model = timm.create_model(saved["backbone"], num_classes=len(saved["class_names"]), **saved["backbone_args"])
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved


