"""The joint frame classifier: one CNN fine-tuned on the frames of two datasets at once, its batch
normalisation dual-domain, a head per dataset (the paper's future work D, after AutoDIAL, Carlucci
et al. ICCV 2017; docs/studies/joint-cnn.md).

The network is the per-dataset frame classifier's (`finetune.py`: BN-Inception by default, any timm
model, the same initial weights) with every `nn.BatchNorm2d` replaced by a `DDBN2d` made from it
(`pipeline.models.ddbn2d`: one alpha pair per layer, from `alpha_init`, learned, projected onto
[n_i / N, 1] after each step; per-domain population statistics) and its classifier replaced by one
linear head per dataset over the shared pooled features. A frame is classified over its own
dataset's labels only: the loss is each frame's cross-entropy under its dataset's head, averaged over
the batch's frames, and extraction writes each dataset's logits file from its head, so the file has
the shape the per-dataset CNN's has and everything after it (the None row, the boundary LSTM, the
recurrent runs, their `eval_labels`) runs unchanged. A concatenated head, a softmax over both label
sets, would also train the network to tell the datasets apart, the opposite of what aligning their
statistics is for.

Batches: every step holds `batch_size // 2` training frames of dataset 1, then the rest of dataset 2
(half each, the recurrent stage's `domain_share` default), each dataset's frames, crops and flips
drawn as its own fine-tuning draws them (`frame_batches.TrainingBatches`, dataset i from seed + i),
so a step is a function of (seed, step) alone and a run resumes exactly. An epoch is
`frames_per_epoch` frames of each dataset (all its training frames when null): each dataset sees as
many frames as its own CNN does, in twice the steps, for the compute of the two CNNs together.
Evaluation (per epoch, and extraction) runs a dataset's frames with its domain flag: its own
population statistics in every layer and its own head.

Outputs in `output_dir`: model.pt (the network, both datasets' names and classes: `extract` writes
either dataset's logits from it), metrics.csv (per epoch: the training loss, each dataset's training
and test-frame accuracy), alphas.csv (every layer's alpha_1 and alpha_2 over training, layers in the
order a frame meets them), train_log.csv, config.json, checkpoint.pt.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..device import select_device
from ..io import save_torch, write_text
from ..models.ddbn2d import constrain_alphas_, ddbn_layers, domains, dual_domain
from ..optim import SGD
from ..options import option
from ..trainer import CheckpointError, Trainer
from .backbone import create_backbone
from .finetune import FinetuneConfig, _deferred_read_back, _epoch_sums, evaluate, training_step_batch
from .frame_batches import (
    BatchLoader,
    EvaluationBatches,
    Preprocess,
    SplitFrames,
    TrainingBatches,
    autocast,
    prepare_network,
    resolve_precision,
    resolve_workers,
)

log = logging.getLogger(__name__)
ALPHA_ROWS = 50  # rows of alphas.csv per layer over a run (and the first and last steps)


@dataclass
class JointFinetuneConfig(FinetuneConfig):
    alpha_init: float = option(0.75, "initial alpha of every dual-domain BN layer (the paper's 0.75 for the LSTM)")


class JointClassifier(nn.Module):
    """A backbone whose BN layers are DDBN2d (pooled features out) and a linear head per domain.

    Training: ``model(x, sizes=[n1, n2])`` -> [logits of domain 1's rows, of domain 2's rows].
    Evaluation: ``model(x, domain=i)`` -> domain i's logits of every row.
    """

    def __init__(self, backbone: nn.Module, class_counts: list[int]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(backbone.num_features, count) for count in class_counts)
        self.pretrained_cfg = backbone.pretrained_cfg

    def forward(self, x, sizes=None, domain=None):
        if self.training:
            with domains(self.backbone, sizes=sizes):
                features = self.backbone(x)  # (N, F)
            return [head(part) for head, part in zip(self.heads, features.split(list(sizes)), strict=True)]
        with domains(self.backbone, domain=domain):
            return self.heads[domain](self.backbone(x))


class DomainView(nn.Module):
    """One dataset's classifier inside a joint one: frames -> that dataset's logits, its domain flag set."""

    def __init__(self, joint: JointClassifier, domain: int):
        super().__init__()
        self.joint, self.domain = joint, domain
        self.pretrained_cfg = joint.pretrained_cfg

    def forward(self, x):
        return self.joint(x, domain=self.domain)


def joint_network(backbone: str, backbone_args: dict, class_counts: list[int], alpha_init: float,
                  weights: str | None = None, reverse_channels: bool = False) -> JointClassifier:
    """The backbone (with its initial weights, when given) made dual-domain, with a head per dataset."""
    if weights is None:
        network = timm.create_model(backbone, num_classes=class_counts[0], **backbone_args)
    else:
        network = create_backbone(backbone, class_counts[0], weights, reverse_channels=reverse_channels,
                                  **backbone_args)
    network.reset_classifier(0)  # pooled features out; the heads classify
    dual_domain(network, len(class_counts), alpha_init)
    return JointClassifier(network, class_counts)


class JointTrainingBatches(torch.utils.data.Dataset):
    """Step -> (step, frames of dataset 1 then dataset 2, their labels, dropout seed): each dataset's part
    its own `TrainingBatches` at that step (cycling over its epochs), the dropout seed dataset 1's."""

    def __init__(self, parts: list[TrainingBatches]):
        self.parts = parts
        self.frames = parts[0].frames  # a loader process opens its own stores (frame_batches._worker_started)

    def __getitem__(self, step: int):
        items = [part[step] for part in self.parts]
        return step, torch.cat([images for _, images, _, _ in items]), torch.cat([labels for _, _, labels, _ in items]), \
            items[0][3]


def _alpha_rows(model: JointClassifier, iteration: int) -> list[dict]:
    return [{"iteration": iteration, "layer": number, **{f"alpha_{k + 1}": v for k, v in enumerate(layer.alpha_values())}}
            for number, layer in enumerate(ddbn_layers(model.backbone), start=1)]


def finetune_joint(frames: list[SplitFrames], config: JointFinetuneConfig, output_dir: str | Path, on_step=None,
                   restart_on_change: bool = False) -> Path:
    """Fine-tune one dual-domain network on the training frames of both `frames` (one split of two
    datasets); returns the path of `model.pt`. `on_step` and `restart_on_change` as for `finetune`."""
    if len(frames) != 2:
        raise ValueError(f"a joint frame classifier is trained on two datasets, got {len(frames)}")
    if frames[0].split != frames[1].split:
        raise ValueError(f"the datasets' splits differ ({frames[0].split}, {frames[1].split})")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for part in frames:
        part.check()
    names = [part.dataset.name for part in frames]
    device = select_device(config.device)
    precision = resolve_precision(config.precision, device)
    workers = resolve_workers(config.workers, device)
    torch.manual_seed(config.seed)  # the initial weights of everything not loaded from a file
    model = joint_network(config.backbone, config.backbone_args, [len(part.class_names) for part in frames],
                          config.alpha_init, config.weights, config.reverse_channels).to(device)
    prepare_network(model, device)
    mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
    train_preprocess = Preprocess(config.input_size, mean, std, train=True)
    eval_preprocess = Preprocess(config.input_size, mean, std, train=False)
    alphas = [layer.alpha for layer in ddbn_layers(model)]
    alpha_ids = {id(a) for a in alphas}
    # the alphas without weight decay: it would pull them towards 0, below their bounds
    optimizer = SGD([{"params": [p for p in model.parameters() if id(p) not in alpha_ids]},
                     {"params": alphas, "weight_decay": 0.0}],
                    lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    sizes = [config.batch_size // 2, config.batch_size - config.batch_size // 2]
    parts, steps_per_epoch = [], 0
    for number, (part, size) in enumerate(zip(frames, sizes)):
        rows = part.frame_index("train")
        per_epoch = len(rows) if config.frames_per_epoch is None else min(config.frames_per_epoch, len(rows))
        if size < 1 or per_epoch < size:
            raise ValueError(f"split {part.split} of {part.dataset.name!r}: {per_epoch} training frames per epoch "
                             f"for a half batch of {size}; a joint batch needs batch_size >= 2 and that many frames")
        parts.append(TrainingBatches(part, train_preprocess, rows, per_epoch, size, config.seed + number))
        steps_per_epoch = max(steps_per_epoch, per_epoch // size)
    total_steps = steps_per_epoch * config.epochs
    alpha_every = max(1, total_steps // ALPHA_ROWS)
    training = JointTrainingBatches(parts)
    log.info("joint fine-tuning of %s on %s in %s: %d steps of %s frames, %d dual-domain BN layers",
             "+".join(names), device, precision, total_steps, "+".join(map(str, sizes)), len(alphas))
    tests = []
    for part in frames:
        rows = part.frame_index("test", config.eval_stride)
        tests.append(EvaluationBatches(part, eval_preprocess, [rows[start: start + config.batch_size]
                                                                for start in range(0, len(rows), config.batch_size)],
                                       compact=workers > 0))
    pin_memory = device.type == "cuda"
    loaders: dict[str, BatchLoader] = {}

    trainer = Trainer(model, optimizer, output_dir, {**config.resumable_fields(), "datasets": names},
                      config.checkpoint_every, f"joint fine-tune {'+'.join(names)} split {frames[0].split}")
    trainer.resume(restart_on_change)
    if trainer.iteration == 0:
        trainer.logs["alphas"] = _alpha_rows(model, 0)
    write_text(output_dir / "config.json", json.dumps({**asdict(config), "datasets": names}, indent=2) + "\n")
    batches = {}
    deferred = _deferred_read_back(device)

    def step(global_step: int):
        epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        started = time.monotonic()
        inputs, targets = training_step_batch(loaders, batches, training, global_step, total_steps, workers,
                                              pin_memory, device, optimizer, config.lr, "joint fine-tuning")
        model.train()
        with autocast(device, precision):
            logits = model(inputs, sizes=sizes)
        own = targets.split(sizes)
        losses = [F.cross_entropy(part.float(), target, reduction="sum") for part, target in zip(logits, own)]
        loss = sum(losses) / len(targets)  # every frame's cross-entropy under its own head, the batch's mean
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        constrain_alphas_(model)
        sums = trainer.extra.setdefault("sums", {**_epoch_sums(), "correct": [0] * len(frames),
                                                 "frames": [0] * len(frames)})
        correct = [(part.argmax(1) == target).sum() for part, target in zip(logits, own)]
        if deferred:
            sums["loss"] = loss.detach().double() * len(targets) + sums["loss"]
            sums["correct"] = [c + s for c, s in zip(correct, sums["correct"])]
        else:
            sums["loss"] += loss.item() * len(targets)
            sums["correct"] = [int(c) + s for c, s in zip(correct, sums["correct"])]
        sums["frames"] = [s + n for s, n in zip(sums["frames"], sizes)]
        sums["seconds"] += time.monotonic() - started
        done = global_step + 1
        if done % alpha_every == 0 or done == total_steps:
            for row in _alpha_rows(model, done):
                trainer.log("alphas", row)
        if step_in_epoch + 1 == steps_per_epoch:  # the epoch's row of metrics.csv
            row = {"epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch,
                   "train_loss": float(sums["loss"]) / sum(sums["frames"])}
            for k, name in enumerate(names):
                row[f"train_accuracy {name}"] = int(sums["correct"][k]) / sums["frames"][k]
            for k, name in enumerate(names):
                key = f"test{k}"
                if key not in loaders:
                    loaders[key] = BatchLoader(tests[k], range(len(tests[k])), workers, pin_memory, persistent=True)
                row[f"test_accuracy {name}"] = evaluate(DomainView(model, k), loaders[key], eval_preprocess, device,
                                                        precision)
            row.update({"lr": optimizer.param_groups[0]["lr"], "seconds": round(sums["seconds"], 2)})
            trainer.log("metrics", row)
            log.info("epoch %d: %s", epoch + 1, row)
            trainer.extra["sums"] = {**_epoch_sums(), "correct": [0] * len(frames), "frames": [0] * len(frames)}
        return loss.detach() if deferred else loss.item()

    try:
        trainer.run(total_steps, step, on_step, log_every=max(1, min(50, steps_per_epoch)),
                    checkpoint_also=lambda done: done % steps_per_epoch == 0)
    finally:
        for loader in loaders.values():
            loader.close()
    trainer.save()
    model_path = output_dir / "model.pt"
    save_torch({"model": model.state_dict(), "joint": True, "backbone": config.backbone,
                "backbone_args": config.backbone_args, "input_size": config.input_size, "datasets": names,
                "class_names": [part.class_names for part in frames], "split": frames[0].split,
                "fps": [part.dataset.fps for part in frames], "alpha_init": config.alpha_init,
                "precision": precision, "config": asdict(config)}, model_path)
    return model_path


def domain_classifier(saved: dict, path, dataset: str | None, device="cpu"):
    """From a joint `model.pt`'s contents: `dataset`'s classifier (a `DomainView`, in evaluation mode)
    and a description of it shaped like a per-dataset model's (`finetune.load_classifier`)."""
    missing = {"model", "backbone", "backbone_args", "class_names", "datasets", "input_size", "alpha_init"} - set(saved)
    if missing:
        raise CheckpointError(f"{path}: not a joint frame classifier of this pipeline (it lacks {sorted(missing)})")
    if dataset not in saved["datasets"]:
        raise ValueError(f"{path}: a joint classifier of {' and '.join(saved['datasets'])}, not of {dataset!r}")
    domain = saved["datasets"].index(dataset)
    model = joint_network(saved["backbone"], saved["backbone_args"], [len(c) for c in saved["class_names"]],
                          saved["alpha_init"])
    model.load_state_dict(saved["model"])
    described = {**saved, "class_names": saved["class_names"][domain], "dataset": dataset,
                 "trained_on": f"{'+'.join(saved['datasets'])} split {saved['split']} (joint, domain {domain + 1})"}
    return DomainView(model, domain).to(device).eval(), described
