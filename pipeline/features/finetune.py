"""Fine-tuning the frame classifier on one split's training frames (docs/method.md §2).

Single frames with their frame-wise labels, cross-entropy, SGD with momentum and a cosine learning
rate over all steps. Resumable exactly: every step's frames, crops and dropout are functions of
(seed, epoch, step) alone, and `checkpoint.pt` (model, optimiser, position, metrics so far) is
written every `checkpoint_every` steps and at every epoch's end, so a killed run restarted with the
same configuration continues to the same weights. Outputs in `output_dir`:

    checkpoint.pt   the resumable state (kept after the run, for inspection)
    model.pt        the fine-tuned classifier and everything extraction needs to use it
    metrics.csv     one row per epoch: training loss and accuracy, test-frame accuracy, lr, time
    config.json     the configuration of the run
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

from ..device import select_device
from ..io import save_torch, write_csv, write_text
from ..options import option
from ..progress import progress_bar
from ..sgd import SGD
from .backbone import create_backbone
from .frame_batches import Preprocess, SplitFrames

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    backbone: str = option("bninception", "any timm model name")
    backbone_args: dict = option(
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

    epoch, step, metrics, sums = 0, 0, [], {"loss": 0.0, "correct": 0, "frames": 0, "seconds": 0.0}
    checkpoint_path = output_dir / "checkpoint.pt"
    if checkpoint_path.exists() and restart_on_change:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state["config"] != config.resumable_fields():
            log.warning("%s is from another configuration: starting afresh", checkpoint_path)
            checkpoint_path.replace(checkpoint_path.with_name("checkpoint.stale.pt"))
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state["config"] != config.resumable_fields():
            raise ValueError(f"{checkpoint_path} was written by a run with another configuration; delete it "
                             f"to start afresh (differences: {_differences(state['config'], config.resumable_fields())})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, step, metrics, sums = state["epoch"], state["step"], state["metrics"], state["sums"]
        log.info("resuming from %s at epoch %d, step %d", checkpoint_path, epoch + 1, step)
    write_text(output_dir / "config.json", json.dumps(asdict(config), indent=2) + "\n")

    def save_checkpoint():
        save_torch({"config": config.resumable_fields(), "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                            "metrics": metrics, "sums": sums}, checkpoint_path)

    while epoch < config.epochs:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_rows))[:per_epoch]
        bar = progress_bar(steps_per_epoch, f"fine-tune {frames.dataset.name} split {frames.split} "
                                            f"epoch {epoch + 1}/{config.epochs}")
        bar.update(step)
        model.train()
        while step < steps_per_epoch:
            started = time.monotonic()
            global_step = epoch * steps_per_epoch + step
            rng = np.random.default_rng([config.seed, epoch, step])
            torch.manual_seed(int(rng.integers(2**62)))  # dropout
            images, labels = frames.read(train_rows[order[step * batch_size : (step + 1) * batch_size]])
            inputs, targets = train_preprocess(images, rng).to(device), torch.from_numpy(labels).to(device)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, step {step}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] += loss.item() * len(labels)
            sums["correct"] += int((logits.argmax(1) == targets).sum())
            sums["frames"] += len(labels)
            sums["seconds"] += time.monotonic() - started
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / sums['frames']:.3f}", refresh=False)
            if step % config.checkpoint_every == 0 and step < steps_per_epoch:
                save_checkpoint()
            if on_step is not None:
                on_step(global_step + 1)
        bar.close()
        test_accuracy = evaluate(model, frames, eval_preprocess, device, config.eval_stride, batch_size)
        metrics.append({"epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch,
                        "train_loss": sums["loss"] / sums["frames"], "train_accuracy": sums["correct"] / sums["frames"],
                        "test_accuracy": test_accuracy, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": round(sums["seconds"], 2)})
        log.info("epoch %d: %s", epoch + 1, metrics[-1])
        write_csv(metrics, output_dir / "metrics.csv")
        epoch, step, sums = epoch + 1, 0, {"loss": 0.0, "correct": 0, "frames": 0, "seconds": 0.0}
        save_checkpoint()

    # Also when a finished run is restarted (its outputs deleted, its checkpoint kept): the metrics
    # come back from the checkpoint.
    write_csv(metrics, output_dir / "metrics.csv")
    model_path = output_dir / "model.pt"
    save_torch({"model": model.state_dict(), "backbone": config.backbone,
                        "backbone_args": config.backbone_args, "input_size": config.input_size,
                        "class_names": frames.class_names, "dataset": frames.dataset.name, "split": frames.split,
                        "fps": frames.dataset.fps, "config": asdict(config)}, model_path)
    return model_path


def load_classifier(path: str | Path, device="cpu"):
    """The classifier saved by `finetune` and its saved description (`model.pt`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned model {path} does not exist")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model = timm.create_model(saved["backbone"], num_classes=len(saved["class_names"]), **saved["backbone_args"])
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved


def _differences(old: dict, new: dict) -> list[str]:
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]
