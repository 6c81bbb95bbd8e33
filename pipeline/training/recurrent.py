"""Training LSTM / BNLSTM / DDLSTM under the paper's protocols (docs/method.md §5-7).

Protocols, over one or two datasets (the same split number of each):

- "single": one dataset.
- "joint": every batch holds n1 windows of dataset 1 then n2 of dataset 2 (`domain_share` of the
  batch from dataset 1, half by default; "adaptive": shares that follow the datasets' training
  losses, `makeup.py`); DDLSTM normalises the two blocks as its two domains.
- "pretrain_finetune": `iterations` on dataset 1 only, then `iterations` on dataset 2 only (the
  paper's "D1,D2"); both datasets are evaluated at the end.

Every frame of a window is scored (cross-entropy over the whole concatenated label vector, reduced
as `loss_reduction` says); with `lookahead` the output at each timestep is scored against the frame
half a history earlier (`windows.py`). What a run is and its readings of the paper: `config.py`;
the model: `classifier.py`; its inputs and batches: `inputs.py`; online evaluation: `evaluation.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..data.precomputed import FeatureSource
from ..device import select_device
from ..io import write_csv, write_text
from ..optim import make_optimizer
from ..trainer import Trainer
from .classifier import SequenceClassifier, frame_loss
from .config import RecurrentConfig
from .evaluation import evaluate, metrics_rows, score_row
from .graphs import GraphedStep
from .inputs import FeatureInput, Layout, WindowSampler
from .makeup import AdaptiveShare, domain_losses
from .sequences import SplitSequences


def _check(splits: list[SplitSequences], config: RecurrentConfig) -> None:
    config.check(len(splits))
    if len({s.split for s in splits}) != 1:
        raise ValueError(f"datasets of one run must come from the same split number, got {[s.split for s in splits]}")


def feature_inputs(splits: list[SplitSequences], config: RecurrentConfig,
                   sources: list[FeatureSource | None] | None) -> list[FeatureInput | None]:
    """Each dataset's features as its input where `config.inputs` asks for them and it has them."""
    if config.inputs == "logits":
        return [None] * len(splits)
    sources = list(sources or [None] * len(splits))
    if len(sources) != len(splits):
        raise ValueError(f"{len(sources)} feature sources for {len(splits)} datasets: give one per input file")
    if all(source is None for source in sources):
        raise ValueError("inputs 'features': none of the run's datasets has precomputed features (--feature-sources)")
    return [None if source is None else FeatureInput(source, split) for source, split in zip(sources, splits)]


def _optimizer(model: SequenceClassifier, config: RecurrentConfig):
    """The run's optimiser; the alphas in a group of their own at lr times `alpha_lr_scale`."""
    alphas = model.alphas()
    alpha_ids = {id(a) for a in alphas}
    groups = [{"params": [p for p in model.parameters() if id(p) not in alpha_ids]}]
    if alphas:
        groups.append({"params": alphas, "lr": config.lr * config.alpha_lr_scale})
    return make_optimizer(config.optimizer, groups, lr=config.lr, momentum=config.momentum)


def train_recurrent(splits: list[SplitSequences], config: RecurrentConfig, output_dir: str | Path,
                    on_step=None, restart_on_change: bool = False,
                    feature_sources: list[FeatureSource | None] | None = None) -> dict:
    """Train under `config.protocol`, evaluate, and write to `output_dir`:

    checkpoint.pt, train_log.csv (loss), alphas.csv (every alpha of every layer for DDLSTM; a header
    alone for the others), shares.csv with `domain_share` "adaptive" (every step's batch makeup),
    metrics.csv (one row per evaluation and dataset: accuracy, edit, F1@10/25/50, and edit and F1
    by MS-TCN's convention), videos.csv (the final evaluation per video), predictions.npz (final
    per-frame predictions, key "<dataset>/<video>", FOREIGN where another dataset's label won),
    config.json. Returns the final pooled metrics per dataset.

    With `config.inputs` "features", `feature_sources` (one per split, None for a dataset from videos)
    give the datasets' precomputed features at the logits' frame rate.
    """
    _check(splits, config)
    output_dir = Path(output_dir)
    device = select_device(config.device)
    layout = Layout(splits, config.input_layout, feature_inputs(splits, config, feature_sources))
    torch.manual_seed(config.seed)
    num_domains = {"single": 1, "pretrain_finetune": 2}.get(config.protocol, len(splits))
    model = SequenceClassifier(config.model, layout.input_size, layout.num_labels, config, num_domains).to(device)
    optimizer = _optimizer(model, config)
    # what a checkpoint must agree with to be continued: every option but those of the runtime
    fingerprint = {k: v for k, v in asdict(config).items() if k not in ("device", "eval_batch", "cuda_graphs")}
    if not config.adaptive_share:  # options of the adaptive makeup alone: a fixed share's run is what it was
        fingerprint = {k: v for k, v in fingerprint.items() if k not in ("share_min", "share_ema")}
    fingerprint["data"] = [f"{s.dataset} split {s.split}" + (" features" if f is not None else "")
                           for s, f in zip(splits, layout.feature_inputs)]
    description = f"{config.protocol} {config.model} x{config.layers} on {' + '.join(s.dataset for s in splits)}"
    trainer = Trainer(model, optimizer, output_dir, fingerprint, config.checkpoint_every, description)
    trainer.resume(restart_on_change)
    write_text(output_dir / "config.json", json.dumps({**asdict(config), "datasets": fingerprint["data"]}, indent=2))
    makeup = None
    if config.adaptive_share:
        makeup = AdaptiveShare(len(splits), config.batch_size, config.share_min, config.share_ema)
        if "makeup" in trainer.extra:  # resumed: the shares and moving averages the checkpoint's step left
            makeup.load_state_dict(trainer.extra["makeup"])
    sampler = WindowSampler(layout, config, makeup)
    total = config.total_iterations
    scored = []  # with an adaptive makeup: the last step's (summed loss, frames) per dataset

    def train_step(x, mask, targets, sizes) -> torch.Tensor:
        """Forward, loss, backward, update: no host synchronisation, so a CUDA graph can hold it."""
        logits = model(x, domain_sizes=sizes, mask=mask)
        loss = frame_loss(logits, targets, config.loss_reduction)
        if makeup is not None:
            scored[:] = [domain_losses(logits, targets, sizes)]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        model.recurrent.constrain_alphas_()  # alphas back into [n_i / N, 1] (docs/method.md §4)
        return loss.detach()

    # An adaptive makeup changes the batch's layout from step to step and reads each step's losses back
    # to choose the next: nothing a replayed graph could hold, so its steps run eagerly.
    graphed = GraphedStep(train_step, enabled=config.cuda_graphs and device.type == "cuda" and makeup is None)

    def step(iteration: int) -> torch.Tensor:
        shares = None if makeup is None else list(makeup.shares)
        x, mask, targets, sizes = sampler.batch(iteration)
        loss = graphed(x.to(device), mask.to(device), targets.to(device), sizes)
        done = iteration + 1
        if makeup is not None:
            makeup.update(scored[0].cpu().tolist())
            trainer.extra["makeup"] = makeup.state_dict()  # saved with the checkpoint this step may write
            trainer.log("shares", makeup.row(done, sizes, shares))
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
