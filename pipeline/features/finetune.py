"""Fine-tuning the frame classifier on one split's training frames (docs/method.md §2).

Single frames with their frame-wise labels, cross-entropy, SGD with momentum and a cosine learning
rate over all steps, run by the training loop every step of the pipeline shares
(`pipeline.trainer.Trainer`). Resumable exactly: every step's frames, crops and dropout are
functions of (seed, epoch, step) alone, and `checkpoint.pt` (model, optimiser, position, metrics so
far, the epoch's running sums) is written every `checkpoint_every` steps and at every epoch's end,
so a killed run restarted with the same configuration continues to the same weights, however many
loader processes (`workers`) either run used: a step's batch is the same wherever it is prepared
(`frame_batches.TrainingBatches`). On CUDA the network runs channels_last under bfloat16 autocast
(`precision: auto`), the weights, the loss and the SGD step in float32. Outputs in `output_dir`:

    checkpoint.pt   the resumable state (kept after the run, for inspection)
    model.pt        the fine-tuned classifier, everything extraction needs to use it, and the
                    precision it was trained in
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

import timm
import torch
import torch.nn.functional as F

from ..device import select_device
from ..io import save_torch, write_text
from ..optim import SGD
from ..options import option
from ..trainer import CheckpointError, Trainer, load_checkpoint
from .backbone import create_backbone
from .frame_batches import (
    PRECISION_HELP,
    PRECISIONS,
    WORKERS_HELP,
    BatchLoader,
    EvaluationBatches,
    Preprocess,
    SplitFrames,
    TrainingBatches,
    autocast,
    prepare_network,
    resolve_precision,
    resolve_workers,
    to_network,
)

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
    precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS)
    workers: int | None = option(None, WORKERS_HELP)

    def resumable_fields(self) -> dict:
        """What must match for a checkpoint to be continued (the device and the number of loader
        processes may change: the latter changes nothing in the results)."""
        values = asdict(self)
        values.pop("device")
        values.pop("workers")
        return values


def _epoch_sums() -> dict:
    """The running sums of one epoch's training loss, correct frames, frames and seconds."""
    return {"loss": 0.0, "correct": 0, "frames": 0, "seconds": 0.0}


def _deferred_read_back(device: torch.device) -> bool:
    """Whether a step leaves its loss and accuracy on the device (read back at log rows, checkpoints
    and the epoch's end) instead of waiting for them: on CUDA, so that this process queues the next
    steps while the GPU runs; on the CPU nothing is gained, and the sums stay Python numbers."""
    return device.type == "cuda"


def network_logits(model, preprocess: Preprocess, crops: torch.Tensor, device: torch.device,
                   precision: str) -> torch.Tensor:
    """(N, C) float32 logits on `device` of central crops (`Preprocess.central_crop`, uint8 on the
    CPU, pinned or not): moved to `device`, normalised there, through the network in its memory
    format and `precision` ('fp32' or 'bf16'). The model is put in its memory format for `device`
    (`prepare_network`) and must be in evaluation mode."""
    prepare_network(model, device)
    with torch.inference_mode():
        inputs = to_network(preprocess.normalise(to_network(crops, device)), device)
        with autocast(device, precision):
            logits = model(inputs)
        return logits.float()


def evaluate(model, batches, preprocess: Preprocess, device, precision: str) -> float:
    """Frame accuracy over `batches` of (central crops, labels)."""
    model.eval()
    correct = frames = 0
    for crops, labels in batches:
        logits = network_logits(model, preprocess, crops, device, precision)
        correct += int((logits.argmax(1).cpu() == labels).sum())
        frames += len(labels)
    return correct / max(1, frames)


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
    precision = resolve_precision(config.precision, device)
    workers = resolve_workers(config.workers, device)
    torch.manual_seed(config.seed)  # the initial weights of everything not loaded from a file
    model = create_backbone(config.backbone, len(frames.class_names), config.weights,
                            reverse_channels=config.reverse_channels, **config.backbone_args).to(device)
    prepare_network(model, device)
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
    log.info("fine-tuning on %s in %s, %d loader process(es)", device, precision, workers)
    training = TrainingBatches(frames, train_preprocess, train_rows, per_epoch, batch_size, config.seed)
    test_rows = frames.frame_index("test", config.eval_stride)
    test_batches = EvaluationBatches(frames, eval_preprocess, [test_rows[start : start + batch_size]
                                                               for start in range(0, len(test_rows), batch_size)],
                                     compact=workers > 0)
    pin_memory = device.type == "cuda"
    loaders: dict[str, BatchLoader] = {}  # started at the first step (the resumed position) and evaluation

    trainer = Trainer(model, optimizer, output_dir, config.resumable_fields(), config.checkpoint_every,
                      f"fine-tune {frames.dataset.name} split {frames.split}")
    trainer.resume(restart_on_change)
    write_text(output_dir / "config.json", json.dumps(asdict(config), indent=2) + "\n")
    batches = {}
    deferred = _deferred_read_back(device)

    def step(global_step: int) -> float:
        epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        started = time.monotonic()
        inputs, targets = training_step_batch(loaders, batches, training, global_step, total_steps, workers,
                                              pin_memory, device, optimizer, config.lr, "fine-tuning")
        model.train()
        with autocast(device, precision):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), targets)  # float32, as the optimiser step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums = trainer.extra.setdefault("sums", _epoch_sums())
        correct = (logits.argmax(1) == targets).sum()
        if deferred:  # tensors on the device (a checkpoint saves them as they are)
            sums["loss"] = loss.detach().double() * len(targets) + sums["loss"]
            sums["correct"] = correct + sums["correct"]
        else:
            sums["loss"] += loss.item() * len(targets)
            sums["correct"] += int(correct)
        sums["frames"] += len(targets)
        sums["seconds"] += time.monotonic() - started
        if step_in_epoch + 1 == steps_per_epoch:  # the epoch's row of metrics.csv
            if "test" not in loaders:
                loaders["test"] = BatchLoader(test_batches, range(len(test_batches)), workers, pin_memory,
                                              persistent=True)
            test_accuracy = evaluate(model, loaders["test"], eval_preprocess, device, precision)
            row = {"epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch,
                   "train_loss": float(sums["loss"]) / sums["frames"],
                   "train_accuracy": int(sums["correct"]) / sums["frames"],
                   "test_accuracy": test_accuracy, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": round(sums["seconds"], 2)}
            trainer.log("metrics", row)
            log.info("epoch %d: %s", epoch + 1, row)
            trainer.extra["sums"] = _epoch_sums()  # metrics.csv is written with the epoch's checkpoint
        return loss.detach() if deferred else loss.item()

    try:
        trainer.run(total_steps, step, on_step, log_every=max(1, min(50, steps_per_epoch)),
                    checkpoint_also=lambda done: done % steps_per_epoch == 0)
    finally:  # the loader processes end with the run, however it ends
        for loader in loaders.values():
            loader.close()
    # Writes metrics.csv too, also when a finished run is restarted (its outputs deleted, its
    # checkpoint kept): the metrics come back from the checkpoint.
    trainer.save()
    model_path = output_dir / "model.pt"
    save_torch({"model": model.state_dict(), "backbone": config.backbone,
                "backbone_args": config.backbone_args, "input_size": config.input_size,
                "class_names": frames.class_names, "dataset": frames.dataset.name, "split": frames.split,
                "fps": frames.dataset.fps, "precision": precision, "config": asdict(config)}, model_path)
    return model_path


def training_step_batch(loaders: dict, batches: dict, training, global_step: int, total_steps: int, workers: int,
                        pin_memory: bool, device, optimizer, lr: float, what: str):
    """Step `global_step`'s training batch on the device, its dropout seed set and the optimiser's
    cosine-decayed learning rate: the loader over the remaining steps is started on first use (and
    again after a resume), so that a step's batch is a function of the step alone."""
    if "train" not in loaders:
        loaders["train"] = BatchLoader(training, range(global_step, total_steps), workers, pin_memory)
        batches["train"] = iter(loaders["train"])
    number, images, labels, dropout_seed = next(batches["train"])
    if number != global_step:  # cannot happen: the loader keeps the order of its indices
        raise RuntimeError(f"{what}: the loader gave step {number}'s batch at step {global_step}")
    torch.manual_seed(dropout_seed)
    inputs, targets = to_network(images, device), labels.to(device, non_blocking=True)
    for group in optimizer.param_groups:
        group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * global_step / total_steps))
    return inputs, targets


def load_classifier(path: str | Path, device="cpu", dataset: str | None = None):
    """The classifier saved by `finetune` and its saved description (`model.pt`); from a joint
    classifier's (`joint.py`), `dataset`'s part of it."""
    saved = load_checkpoint(path, "fine-tuned model")
    if saved.get("joint"):
        from .joint import domain_classifier

        return domain_classifier(saved, path, dataset, device)
    missing = {"model", "backbone", "backbone_args", "class_names", "input_size"} - set(saved)
    if missing:
        raise CheckpointError(f"{path}: not a fine-tuned model of this pipeline (it lacks {sorted(missing)})")
    model = timm.create_model(saved["backbone"], num_classes=len(saved["class_names"]), **saved["backbone_args"])
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved


