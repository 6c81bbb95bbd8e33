"""The joint frame classifier of two datasets read from precomputed features: a dual-domain batch
normalisation of the features, then a linear head per dataset (the features route's analogue of the
joint CNN, `joint.py`; docs/studies/joint-cnn.md).

The per-dataset classifier (`linear.py`) standardises each dimension with its dataset's sample
statistics, which is a one-domain BN on the input, and fits a linear layer. Here that standardisation
is the package's `DDBN` with two domains (one alpha pair, learned; gamma and beta learned from 1 and
0; per-domain population statistics, which normalise a dataset's frames at extraction with its
domain flag), and the heads are each dataset's own. A linear head can absorb any per-dimension
affine change of its input, so the DDBN does not change what the classifier can represent, only how
it is fitted: the two heads share nothing but the normalisation's statistics.

Fitting: each dataset's training sample as the per-dataset classifier draws it (`max_frames`
evenly over its training videos, `linear.training_sample`), then `steps` SGD steps with momentum and
a cosine learning rate, on batches of `batch_size` sample rows, half from each dataset (drawn with
replacement from a generator of (seed, step)), the cross-entropy of every row under its dataset's
head plus `weight_decay` / 2 |W|^2 on the heads. Seconds, as the per-dataset fit: no checkpoint.

Outputs: each dataset's logits file (the layout of `logits.py`), and in `work_dir` model.pt,
metrics.json (sample sizes, final loss, each dataset's test-frame accuracy, seconds) and alphas.csv
(alpha_1 and alpha_2 of the one layer over training).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import Dataset
from ..data.precomputed import FeatureSource
from ..device import select_device
from ..io import save_torch, write_csv, write_text
from ..models.ddbn import DDBN
from ..optim import SGD
from ..options import option
from .linear import _pin_mmap_threshold, training_sample, write_split_logits

log = logging.getLogger(__name__)
ALPHA_ROWS = 50  # rows of alphas.csv over a fit


@dataclass
class JointLinearConfig:
    max_frames: int = option(200_000, "training frames of each dataset, sampled evenly over its training videos")
    steps: int = option(2000, "SGD steps")
    batch_size: int = option(256, "sample rows per step, half from each dataset")
    lr: float = option(0.1, "peak learning rate (cosine decay to 0)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(1e-4, "L2 penalty on the heads' weights")
    alpha_init: float = option(0.75, "initial alphas of the input's dual-domain BN")
    seed: int = option(0, "picks each training video's sampling offset and every step's rows")
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', ...")


class JointLinearClassifier(nn.Module):
    """DDBN of the features, a linear head per dataset. Training: ``model(x, sizes=[n1, n2])`` -> a list
    of each domain's logits; evaluation: ``model(x, domain=i)`` -> domain i's logits."""

    def __init__(self, dim: int, class_counts: list[int], alpha_init: float = 0.75):
        super().__init__()
        self.norm = DDBN(dim, num_domains=len(class_counts), alpha_init=alpha_init, max_timesteps=1, gamma_init=1.0,
                         learnable_affine=True)
        self.heads = nn.ModuleList(nn.Linear(dim, count) for count in class_counts)
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x, sizes=None, domain=None):  # (N, D)
        if self.training:
            normalised = self.norm(x, 0, domain_sizes=sizes)
            return [head(part) for head, part in zip(self.heads, normalised.split(list(sizes)), strict=True)]
        return self.heads[domain](self.norm(x, 0, domain=domain))


def _alpha_row(model: JointLinearClassifier, iteration: int) -> dict:
    values = model.norm.effective_alpha().detach().tolist()
    return {"iteration": iteration, "layer": 1, **{f"alpha_{k + 1}": v for k, v in enumerate(values)}}


def fit_joint_linear(samples: list[tuple[torch.Tensor, torch.Tensor]], class_counts: list[int],
                     config: JointLinearConfig) -> tuple[JointLinearClassifier, dict, list[dict]]:
    """Fit on each dataset's sample (features (n_i, D), labels (n_i,)); the model, a summary and the
    alpha rows."""
    device = samples[0][0].device
    model = JointLinearClassifier(samples[0][0].shape[1], class_counts, config.alpha_init).to(device)
    weights = [head.weight for head in model.heads]
    others = [p for p in model.parameters() if all(p is not w for w in weights) and p is not model.norm.alpha]
    optimizer = SGD([{"params": weights, "weight_decay": config.weight_decay}, {"params": others},
                     {"params": [model.norm.alpha]}], lr=config.lr, momentum=config.momentum, weight_decay=0.0)
    sizes = [config.batch_size // 2, config.batch_size - config.batch_size // 2]
    if sizes[0] < 1:
        raise ValueError(f"batch_size {config.batch_size}: a joint batch needs at least one row of each dataset")
    alpha_every = max(1, config.steps // ALPHA_ROWS)
    alphas = [_alpha_row(model, 0)]
    model.train()
    for step in range(config.steps):
        rng = np.random.default_rng([config.seed, step])
        picks = [torch.from_numpy(rng.integers(0, len(x), size)).to(device) for (x, _), size in zip(samples, sizes)]
        inputs = torch.cat([x[index] for (x, _), index in zip(samples, picks)])
        targets = [y[index] for (_, y), index in zip(samples, picks)]
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        logits = model(inputs, sizes=sizes)
        loss = sum(F.cross_entropy(part, target, reduction="sum") for part, target in zip(logits, targets)) / sum(sizes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.norm.constrain_alpha_()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the joint linear classifier's loss is {loss.item()} at step {step + 1}: lower "
                                     "its learning rate or check the features")
        if (step + 1) % alpha_every == 0 or step + 1 == config.steps:
            alphas.append(_alpha_row(model, step + 1))
    return model.eval(), {"train_loss": loss.item(), "steps": config.steps}, alphas


def train_and_extract_joint(datasets: list[Dataset], split: int, sources: list[FeatureSource],
                            config: JointLinearConfig, outputs: list[str | Path], work_dir: str | Path) -> dict:
    """Fit on both datasets' `split` training videos; write each one's logits of every video of the split
    to its `outputs` path. Returns the metrics (also `work_dir`/metrics.json)."""
    if len(datasets) != 2 or len(sources) != 2 or len(outputs) != 2:
        raise ValueError("a joint linear classifier takes two datasets, their feature sources and two outputs")
    started = time.monotonic()
    _pin_mmap_threshold()
    device = select_device(config.device)
    work_dir = Path(work_dir)
    samples = []
    for dataset, source in zip(datasets, sources):
        x, y = training_sample(dataset, split, source, config.max_frames, config.seed)
        samples.append((torch.from_numpy(x).to(device), y.to(device)))
    dims = [source.dim for source in sources]
    if dims[0] != dims[1]:
        raise ValueError(f"{datasets[0].name} has {dims[0]}-d features and {datasets[1].name} {dims[1]}-d: a joint "
                         "classifier normalises them as one input")
    names = [dataset.name for dataset in datasets]
    log.info("fitting jointly on %s frames x %d dimensions", "+".join(str(len(x)) for x, _ in samples), dims[0])
    model, metrics, alphas = fit_joint_linear(samples, [d.num_classes for d in datasets], config)
    metrics.update({"datasets": names, "split": split, "dim": int(dims[0]),
                    "sample_frames": [len(x) for x, _ in samples]})
    del samples
    for domain, (dataset, source, output) in enumerate(zip(datasets, sources, outputs)):
        first = dataset.videos[dataset.split(split).train[0]]
        description = {"classifier": "joint linear", "features": str(Path(first.features_path).parent), "dim": int(dims[0]),
            "trained_on": f"{'+'.join(names)} split {split} (joint, domain {domain + 1})", "config": asdict(config)}
        with torch.no_grad():
            correct, total = write_split_logits(lambda x, domain=domain: model(x, domain=domain), dataset.num_classes,
                                                dataset, split, source, output, description, device)
        metrics[f"test_accuracy {dataset.name}"] = correct / max(1, total)
    metrics["seconds"] = round(time.monotonic() - started, 2)
    save_torch({"model": model.state_dict(), "joint": True, "datasets": names,
                "class_names": [d.class_names for d in datasets], "dim": int(dims[0]), "config": asdict(config)},
               work_dir / "model.pt")
    write_csv(alphas, work_dir / "alphas.csv")
    write_text(work_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    log.info("joint linear classifier %s split %d: %s", "+".join(names), split, metrics)
    return metrics
