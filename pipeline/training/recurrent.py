"""Training LSTM / BNLSTM / DDLSTM under the paper's protocols, and online evaluation (docs/method.md §5-7).

Protocols, over one or two datasets (the same split number of each):

- "single": one dataset.
- "joint": every batch holds n1 windows of dataset 1 then n2 of dataset 2 (`domain_share` of the
  batch from dataset 1, half by default); DDLSTM normalises the two blocks as its two domains.
- "pretrain_finetune": `iterations` on dataset 1 only, then `iterations` on dataset 2 only (the
  paper's "D1,D2"); both datasets are evaluated at the end.

Labels (the paper's concatenated label vectors, Fig. 1): dataset i owns a block of the output
vector. Every frame of a window is scored (cross-entropy over the whole vector); with `lookahead`
the output at each timestep is scored against the frame half a history earlier (`windows.py`).

The readings where the paper is terse are options (docs/method.md, "Readings of the paper"):

- `eval_labels`: a test frame is classified by the argmax over the whole concatenated vector
  ("all": a label of the other dataset counts as wrong, stored as -1 in the predictions; the only
  reading under which the paper's pre-train / fine-tune rows can collapse to 0) or over its own
  dataset's block ("own").
- `input_layout`: dataset i's standardised logits fill its own block of the input vector, zeros
  elsewhere ("blocks"), or both datasets' fill the same leading columns, zero-padded to the larger
  ("shared"); the two boundary features follow, shared by all datasets.
- `short_windows`: where the frames of a window shorter than the history sit (`windows.py`).
- `population_batches`: the statistics evaluation normalises with. Training keeps running averages
  (momentum 0.1) of every timestep's batch statistics, which lag behind weights that move fast;
  with K > 0 they are replaced before each evaluation by the average over K training batches of
  the current weights (`recompute_population_statistics`).

Evaluation is `evaluation.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import select_device
from ..io import write_csv, write_text
from ..models import create_model
from ..options import option
from ..sgd import SGD
from .evaluation import evaluate, metrics_rows, score_row
from .graphs import GraphedStep
from .loop import Trainer
from .sequences import SplitSequences
from .windows import ALIGNMENTS, IGNORE, gather_windows, sample_ends, stack_by_video, window_targets

PROTOCOLS = ("single", "joint", "pretrain_finetune")
MODELS = ("lstm", "bnlstm", "ddlstm")
EVAL_LABELS = ("all", "own")
INPUT_LAYOUTS = ("blocks", "shared")


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
    input_layout: str = option(
        "blocks",
        "blocks: each dataset's logits in input columns of its own; shared: in the same columns, zero-"
        "padded to the larger", choices=INPUT_LAYOUTS)
    short_windows: str = option(
        "end",
        "end: a window shorter than the history sits at the last timesteps after padding; start: from "
        "timestep 0, padding after it", choices=ALIGNMENTS)
    batch_size: int = option(128, "windows per step, both datasets together when joint")
    domain_share: float = option(0.5, "joint: fraction of each batch from the first dataset")
    iterations: int = option(50_000, "training steps (per phase for pretrain_finetune)")
    lr: float = option(0.01, "SGD learning rate")
    momentum: float = option(0.0, "SGD momentum (the paper gives none: 0)")
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
    def total_iterations(self) -> int:
        """Training steps of the whole run: `iterations` per phase, two phases for pretrain_finetune."""
        return self.iterations * (2 if self.protocol == "pretrain_finetune" else 1)


class SequenceClassifier(nn.Module):
    """A recurrent stack and a linear classifier over its every output."""

    def __init__(self, kind: str, input_size: int, num_labels: int, config: RecurrentConfig, num_domains: int):
        super().__init__()
        self.recurrent = create_model(kind, input_size, config.hidden, num_layers=config.layers,
                                      num_domains=num_domains, alpha_init=config.alpha_init,
                                      max_timesteps=config.history, learnable_affine=config.learnable_affine)
        self.head = nn.Linear(config.hidden, num_labels)

    def forward(self, x, domain_sizes=None, domain=None, mask=None):  # (B, T, F) -> (B, T, labels)
        return self.head(self.recurrent(x, domain_sizes=domain_sizes, domain=domain, mask=mask))


class Layout:
    """Where each dataset's labels and logits sit in the concatenated vectors."""

    def __init__(self, splits: list[SplitSequences], input_layout: str = "blocks"):
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, not {input_layout!r}")
        self.splits = splits
        sizes = [s.num_classes for s in splits]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        self.num_labels = int(sum(sizes))
        self.input_offsets = self.offsets if input_layout == "blocks" else [0] * len(splits)
        self.logit_columns = self.num_labels if input_layout == "blocks" else max(sizes)
        self.boundary = all(s.has_boundary for s in splits)
        self.input_size = self.logit_columns + (2 if self.boundary else 0)

    def features(self, index: int, sequence) -> np.ndarray:
        split = self.splits[index]
        out = np.zeros((len(sequence.labels), self.input_size), np.float32)
        start = self.input_offsets[index]
        out[:, start : start + split.num_classes] = split.standardised(sequence)
        if self.boundary:
            out[:, self.logit_columns :] = sequence.boundary
        return out

    def block(self, index: int) -> slice:
        return slice(self.offsets[index], self.offsets[index] + self.splits[index].num_classes)


def _check(splits: list[SplitSequences], config: RecurrentConfig) -> None:
    if config.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {config.protocol!r}")
    wanted = 1 if config.protocol == "single" else 2
    if len(splits) != wanted:
        raise ValueError(f"protocol {config.protocol!r} takes {wanted} dataset(s), got {len(splits)}")
    if len({s.split for s in splits}) != 1:
        raise ValueError(f"datasets of one run must come from the same split number, got {[s.split for s in splits]}")
    if not 0 < config.domain_share < 1 and config.protocol == "joint":
        raise ValueError(f"domain_share must lie in (0, 1), got {config.domain_share}")
    for name, allowed in (("eval_labels", EVAL_LABELS), ("input_layout", INPUT_LAYOUTS),
                          ("short_windows", ALIGNMENTS)):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, not {getattr(config, name)!r}")


def batch_sizes(config: RecurrentConfig, iteration: int) -> list[int]:
    """Windows of each dataset in the batch of `iteration`."""
    if config.protocol == "single":
        return [config.batch_size]
    if config.protocol == "joint":
        first = round(config.batch_size * config.domain_share)
        return [first, config.batch_size - first]
    phase = 0 if iteration < config.iterations else 1
    return [config.batch_size if d == phase else 0 for d in range(2)]


class WindowSampler:
    """Training batches of one run: (x, mask, targets, domain_sizes) for an iteration."""

    def __init__(self, layout: Layout, config: RecurrentConfig):
        self.layout = layout
        self.config = config
        self.videos = []  # per dataset: (features, global labels) of each training video
        for index, split in enumerate(layout.splits):
            self.videos.append([(layout.features(index, s), s.labels + layout.offsets[index])
                                for s in split.subset("train")])

    def batch(self, iteration: int):
        config = self.config
        rng = np.random.default_rng([config.seed, iteration])
        xs, masks, targets = [], [], []
        sizes = batch_sizes(config, iteration)
        for videos, count in zip(self.videos, sizes):
            if count == 0:
                continue
            picks, ends = sample_ends([len(labels) for _, labels in videos], count, config.lookahead_frames, rng)

            def take(video, video_ends, videos=videos):
                features, labels = videos[video]
                x, mask = gather_windows(features, video_ends, config.history, config.short_windows)
                return x, mask, window_targets(labels, video_ends, config.history, config.lookahead_frames,
                                               config.short_windows)

            x, mask, target = stack_by_video(picks, ends, take)
            xs.append(x)
            masks.append(mask)
            targets.append(target)
        return (torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(masks)),
                torch.from_numpy(np.concatenate(targets)), sizes)


def train_recurrent(splits: list[SplitSequences], config: RecurrentConfig, output_dir: str | Path,
                    on_step=None, restart_on_change: bool = False) -> dict:
    """Train under `config.protocol`, evaluate, and write to `output_dir`:

    checkpoint.pt, train_log.csv (loss), alphas.csv (every alpha of every layer for DDLSTM; a header
    alone for the others),
    metrics.csv (one row per evaluation and dataset: accuracy, edit, F1@10/25/50, and edit and F1
    by MS-TCN's convention), videos.csv (the final evaluation per video), predictions.npz (final
    per-frame predictions, key "<dataset>/<video>", FOREIGN where another dataset's label won),
    config.json. Returns the final pooled metrics per dataset.
    """
    _check(splits, config)
    output_dir = Path(output_dir)
    device = select_device(config.device)
    layout = Layout(splits, config.input_layout)
    torch.manual_seed(config.seed)
    num_domains = 1 if config.protocol == "single" else 2
    model = SequenceClassifier(config.model, layout.input_size, layout.num_labels, config, num_domains).to(device)
    optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    # what a checkpoint must agree with to be continued: every option but those of the runtime
    fingerprint = {k: v for k, v in asdict(config).items() if k not in ("device", "eval_batch", "cuda_graphs")}
    fingerprint["data"] = [f"{s.dataset} split {s.split}" for s in splits]
    description = f"{config.protocol} {config.model} x{config.layers} on {' + '.join(s.dataset for s in splits)}"
    trainer = Trainer(model, optimizer, output_dir, fingerprint, config.checkpoint_every, description)
    trainer.resume(restart_on_change)
    write_text(output_dir / "config.json", json.dumps({**asdict(config), "datasets": fingerprint["data"]}, indent=2))
    sampler = WindowSampler(layout, config)
    total = config.total_iterations

    def train_step(x, mask, targets, sizes) -> torch.Tensor:
        """Forward, loss, backward, update: no host synchronisation, so a CUDA graph can hold it."""
        logits = model(x, domain_sizes=sizes, mask=mask)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        if config.alpha_lr_scale != 1.0:  # plain SGD: a scaled gradient is a scaled learning rate
            for layer in model.recurrent.layers:
                if layer.alpha is not None and layer.alpha.grad is not None:
                    layer.alpha.grad.mul_(config.alpha_lr_scale)
        optimizer.step()
        model.recurrent.constrain_alphas_()  # alphas back into [n_i / N, 1] (docs/method.md §4)
        return loss.detach()

    graphed = GraphedStep(train_step, enabled=config.cuda_graphs and device.type == "cuda")

    def step(iteration: int) -> torch.Tensor:
        x, mask, targets, sizes = sampler.batch(iteration)
        loss = graphed(x.to(device), mask.to(device), targets.to(device), sizes)
        done = iteration + 1
        if config.model == "ddlstm" and (done % config.log_every == 0 or done == total):
            for layer, values in enumerate(model.recurrent.alphas().tolist(), start=1):
                trainer.log("alphas", {"iteration": done, "layer": layer,
                                       **{f"alpha_{k + 1}": v for k, v in enumerate(values)}})
        if config.eval_every and done % config.eval_every == 0 and done < total:
            for row in metrics_rows(evaluate(model, layout, config, device, sampler), done, splits[0].split):
                trainer.log("metrics", row)
        return loss

    model.train()
    trainer.run(total, step, on_step, config.log_every)
    results = evaluate(model, layout, config, device, sampler)
    if not any(row["iteration"] == total for row in trainer.logs.get("metrics", [])):
        for row in metrics_rows(results, total, splits[0].split):
            trainer.log("metrics", row)
    trainer.save()
    if "alphas" not in trainer.logs:  # every run has the file, a header alone without alphas
        write_csv([], output_dir / "alphas.csv", fieldnames=["iteration", "layer"])
    write_csv([{"dataset": dataset, "video": name, "frames": scores.frames,
                **score_row(scores, r["videos_mstcn"][name])}
               for dataset, r in results.items() for name, scores in r["videos"].items()],
              output_dir / "videos.csv")
    temporary = output_dir / ".predictions.part.npz"
    np.savez_compressed(temporary, **{f"{dataset}/{name}": p for dataset, r in results.items()
                                      for name, p in r["predictions"].items()})
    temporary.replace(output_dir / "predictions.npz")
    return {dataset: score_row(r["pooled"], r["pooled_mstcn"]) for dataset, r in results.items()}
