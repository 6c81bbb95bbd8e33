"""The boundary-prediction LSTM (docs/method.md §2 and §7; after Li et al., ECCV 2016).

For frame t the target is a Gaussian N(d_t, s^2) at the true next action boundary: d_t frames
until the label changes (the video's end counts as a boundary), clipped to the horizon (the
history size), with s a configured constant. A 1-layer LSTM over the standardised logits predicts
(mu_t, log sigma_t) at every frame; the loss is KL(target || prediction) averaged over frames.
Everything is in units of the horizon (KL between Gaussians does not change when both are
rescaled), and the per-frame (mu_t, sigma_t) in those units is what the recurrent stage appends
to the logits. Like the recurrent models it runs online: frame t is predicted from the window of
`history` frames ending at it.

Cross-fitting (`folds`). A model predicts its own training videos more accurately than unseen ones,
so if the recurrent models learned from in-sample boundary features they would lean on inputs
better than those they get at test time. With `folds` K > 1 the training videos are cut into K
folds by participant (natural order, contiguous groups, as the leave-person-out splits; by video
when there are fewer participants than folds), K models are trained each without one fold and
predict that fold, and one model trained on every training video predicts the test videos.
`folds: 1` is a single model for everything (in-sample on the training videos).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import natural_key
from ..device import select_device
from ..features.logits import Logits, LogitsWriter
from ..models import create_model
from ..optim import SGD
from ..options import option
from ..trainer import Trainer
from .sequences import SplitSequences
from .windows import gather_windows, sample_ends, stack_by_video, window_index

MIN_STD = 0.01  # smallest predicted standard deviation, in horizon units
log = logging.getLogger(__name__)


@dataclass
class BoundaryConfig:
    history: int = option(200, "window length and horizon of the boundary distance, in frames")
    hidden: int = option(64, "LSTM units")
    target_std: float = option(
        5.0,
        "standard deviation of the target Gaussian at the next boundary, in frames")
    batch_size: int = option(64, "windows per step")
    iterations: int = option(2000, "training steps")
    lr: float = option(0.01, "SGD learning rate")
    momentum: float = option(0.9, "SGD momentum")
    clip_grad_norm: float = option(5.0, "gradient norm limit (0: none)")
    checkpoint_every: int = option(500, "steps between checkpoints")
    log_every: int = option(50, "steps between rows of train_log.csv")
    eval_batch: int = option(256, "windows per forward pass when predicting every frame")
    folds: int = option(
        4,
        "cross-fitting: K models each without one fold of the training videos (by participant) predict "
        "that fold, one model on all of them the test videos; 1: one model predicts every video")
    seed: int = option(0, "random seed: the same seed and configuration give the same model")
    device: str = option("auto", "'auto' (CUDA when present), 'cpu', 'cuda', ...")


def boundary_distances(labels: np.ndarray, horizon: int) -> np.ndarray:
    """Frames from each frame to the next label change (or the video's end), at most `horizon`."""
    length = len(labels)
    change = np.flatnonzero(np.diff(labels) != 0) + 1  # first frame of each new segment
    next_change = np.append(change, length)[np.searchsorted(change, np.arange(length), side="right")]
    return np.minimum(next_change - np.arange(length), horizon).astype(np.float32)


def gaussian_kl(target_mean, target_std, mean, log_std):
    """KL(N(target_mean, target_std^2) || N(mean, exp(log_std)^2)), elementwise."""
    return (log_std - torch.log(torch.as_tensor(target_std, dtype=mean.dtype))
            + (target_std**2 + (target_mean - mean) ** 2) / (2 * torch.exp(2 * log_std)) - 0.5)


class BoundaryLSTM(nn.Module):
    def __init__(self, input_size: int, hidden: int, history: int):
        super().__init__()
        self.lstm = create_model("lstm", input_size, hidden, num_layers=1, num_domains=1, max_timesteps=history)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x, mask=None):  # (B, T, C) -> (B, T, 2): mean, log std in horizon units
        mean, raw = self.head(self.lstm(x, mask=mask)).unbind(-1)
        # A softplus keeps the predicted spread positive and away from 0, where the KL term
        # (target - mean)^2 / sigma^2 explodes (an unbounded log sigma diverged to NaN).
        return torch.stack([mean, torch.log(F.softplus(raw) + MIN_STD)], -1)


def _batch(features: list[np.ndarray], distances: list[np.ndarray], config: BoundaryConfig, iteration: int):
    """Windows, masks and target distances (horizon units) of one training step."""
    rng = np.random.default_rng([config.seed, iteration])
    videos, ends = sample_ends([len(f) for f in features], config.batch_size, 0, rng)

    def take(video, video_ends):
        x, mask = gather_windows(features[video], video_ends, config.history)
        index, _ = window_index(video_ends, config.history, len(features[video]))
        return x, mask, distances[video][index]

    x, mask, distance = stack_by_video(videos, ends, take)
    return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(distance) / config.history


def train_boundary(split: SplitSequences, config: BoundaryConfig, output_dir: str | Path, on_step=None,
                   restart_on_change: bool = False, leave_out: frozenset = frozenset(),
                   label: str = "") -> BoundaryLSTM:
    """Train on the split's training videos but those in `leave_out` (resuming from
    `output_dir`/checkpoint.pt if present); `label` names this model among the split's."""
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    model = BoundaryLSTM(split.num_classes, config.hidden, config.history).to(device)
    optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    fingerprint = {k: v for k, v in asdict(config).items() if k not in ("device", "eval_batch")}
    fingerprint["data"] = f"{split.dataset} split {split.split}" + (f" {label}" if label else "")
    fingerprint["left_out"] = sorted(leave_out)
    trainer = Trainer(model, optimizer, output_dir, fingerprint, config.checkpoint_every,
                      f"boundary {split.dataset} split {split.split}" + (f" {label}" if label else ""))
    trainer.resume(restart_on_change)
    train = [s for s in split.subset("train") if s.name not in leave_out]
    if not train:
        raise ValueError(f"boundary {split.dataset} split {split.split} {label}: no training video left")
    features = [split.standardised(s) for s in train]
    distances = [boundary_distances(s.labels, config.history) for s in train]
    target_std = config.target_std / config.history

    def step(iteration: int) -> float:
        x, mask, distance = _batch(features, distances, config, iteration)
        x, mask, distance = x.to(device), mask.to(device), distance.to(device)
        prediction = model(x, mask=mask)
        kl = gaussian_kl(distance, target_std, prediction[..., 0], prediction[..., 1])
        loss = kl[mask].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        return loss.item()

    model.train()
    trainer.run(config.iterations, step, on_step, config.log_every)
    trainer.save()
    return model


def boundary_folds(split: SplitSequences, folds: int) -> list[list[str]]:
    """The training videos cut into `folds` folds by participant; by video where there are fewer
    participants than folds, and into as many folds as there are videos where there are fewer
    still (a warning says so). A split with one training video gets no fold (in-sample only)."""
    train = split.subset("train")
    people = sorted({s.participant for s in train}, key=natural_key)
    if len(people) >= folds:
        groups = [set(group) for group in np.array_split(np.array(people, dtype=object), folds)]
        return [[s.name for s in train if s.participant in group] for group in groups]
    count = min(folds, len(train))
    log.warning("%s split %d: %d training participants and %d videos for %d boundary folds; %s",
                split.dataset, split.split, len(people), len(train), folds,
                f"{count} folds by video" if count > 1 else "no cross-fitting (in-sample boundary features)")
    if count < 2:
        return []
    names = sorted((s.name for s in train), key=natural_key)
    return [list(group) for group in np.array_split(np.array(names, dtype=object), count)]


def fit_boundary_models(split: SplitSequences, config: BoundaryConfig, work_dir: str | Path,
                        restart_on_change: bool = False) -> tuple[dict[str, BoundaryLSTM], dict[str, str]]:
    """The split's boundary models (module docstring) and which one predicts each video:
    ({model name: model}, {video: model name}); work_dir/<model name>/ holds each one's checkpoint."""
    work_dir = Path(work_dir)
    names = [s.name for s in split.sequences]
    if config.folds <= 1:
        model = train_boundary(split, config, work_dir / "all", restart_on_change=restart_on_change)
        return {"all": model}, dict.fromkeys(names, "all")
    models = {"all": train_boundary(split, config, work_dir / "all", restart_on_change=restart_on_change)}
    assignment = dict.fromkeys(names, "all")  # test videos, and training videos no fold can take
    for number, fold in enumerate(boundary_folds(split, config.folds), start=1):
        label = f"fold{number}"
        models[label] = train_boundary(split, config, work_dir / label, restart_on_change=restart_on_change,
                                       leave_out=frozenset(fold), label=f"{label} of {config.folds}")
        assignment.update(dict.fromkeys(fold, label))
    return models, assignment


def boundary_predictions(split: SplitSequences, config: BoundaryConfig, work_dir: str | Path,
                         restart_on_change: bool = False) -> dict[str, np.ndarray]:
    """Every video's per-frame boundary prediction, cross-fitted on the training videos."""
    models, assignment = fit_boundary_models(split, config, work_dir, restart_on_change)
    out = {}
    for name, model in models.items():
        out.update(predict_boundary(model, split, config, [v for v, m in assignment.items() if m == name]))
    return out


@torch.no_grad()
def predict_boundary(model: BoundaryLSTM, split: SplitSequences, config: BoundaryConfig,
                     names=None) -> dict[str, np.ndarray]:
    """(T, 2) per video (of `names`, default all): the predicted (mean, std) of the distance to the
    next boundary, in horizon units, each frame from the window of `history` frames ending at it."""
    return {sequence.name: boundary_of(model, split.standardised(sequence), config.history, config.eval_batch)
            for sequence in split.sequences if names is None or sequence.name in names}


@torch.no_grad()
def boundary_of(model: BoundaryLSTM, features: np.ndarray, history: int, eval_batch: int) -> np.ndarray:
    """(T, 2) predicted (mean, std) of one video from its standardised logits (T, C): each frame from the
    window of `history` frames ending at it, `eval_batch` windows per forward (here and in
    `pipeline.inference`)."""
    model.eval()
    rows = [boundary_at(model, features, np.arange(start, min(len(features), start + eval_batch)), history)
            for start in range(0, len(features), eval_batch)]
    return np.concatenate(rows)


@torch.no_grad()
def boundary_at(model: BoundaryLSTM, features: np.ndarray, ends: np.ndarray, history: int) -> np.ndarray:
    """(len(ends), 2) float32 predicted (mean, std) at the frames `ends`, one window each."""
    device = next(model.parameters()).device
    x, mask = gather_windows(features, ends, history)
    prediction = model(torch.from_numpy(x).to(device), mask=torch.from_numpy(mask).to(device))[:, -1]
    return torch.stack([prediction[:, 0], prediction[:, 1].exp()], 1).cpu().numpy().astype(np.float32)


def write_with_boundary(logits_path: str | Path, boundary: dict[str, np.ndarray], output: str | Path) -> Path:
    """A copy of the logits file with each video's `boundary` added: the recurrent stage's input."""
    with Logits(logits_path) as source, LogitsWriter(output, source.dataset, source.split, source.fps,
                                                     source.class_names, source.model, source.background) as writer:
        for name in source.names():
            writer.add(name, source.subset(name), source.logits(name), source.labels(name), boundary[name],
                       participant=source.participant(name))
    return Path(output)
