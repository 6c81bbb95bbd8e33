"""Online evaluation of a trained recurrent model (docs/method.md §6-7): every frame of every test
video classified from the window that ends at it (plus the look-ahead), with, for the BN models, the
dataset's population statistics, optionally recomputed for the final weights first; scored by both
conventions of which segments count (`pipeline.evaluation.metrics`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.metrics import mstcn_background, pool, score_video
from ..models import DDBN
from .classifier import SequenceClassifier
from .config import RecurrentConfig
from .inputs import Layout, WindowSampler
from .windows import gather_windows

FOREIGN = -1  # the prediction stored for a frame classified as one of the other dataset's labels


WINDOW_BYTES = 256 << 20  # the windows of one evaluation batch: wide inputs (features) get fewer per batch


@torch.no_grad()
def predict_video(model: SequenceClassifier, features: np.ndarray, block: slice, domain: int,
                  config: RecurrentConfig, device) -> tuple[np.ndarray, np.ndarray]:
    """Online predictions for every frame of one video: (T,) class ids of the dataset (FOREIGN where
    `eval_labels` is "all" and the argmax falls in another dataset's block), and the (T, labels)
    scores of the whole concatenated vector they come from.

    With an input projection the video's frames are projected once and the windows cut from the
    projected frames (the same outputs: a frame's projection does not depend on its window)."""
    projected = model.projection is not None
    if projected:
        features = torch.cat([model.project(torch.from_numpy(chunk).to(device)).float().cpu()
                              for chunk in np.array_split(features, max(1, len(features) // 4096))]).numpy()
    width = features.shape[1] * 4 * config.history
    batch = max(1, min(config.eval_batch, WINDOW_BYTES // width))
    scores = []
    for start in range(0, len(features), batch):
        ends = np.arange(start, min(len(features), start + batch)) + config.lookahead_frames
        x, mask = gather_windows(features, ends, config.history, config.short_windows)
        out = model(torch.from_numpy(x).to(device), domain=domain, mask=torch.from_numpy(mask).to(device),
                    projected=projected)
        scores.append(out[:, -1].float().cpu().numpy())
    scores = np.concatenate(scores)
    return labels_from_scores(scores, block, config.eval_labels), scores


def labels_from_scores(scores: np.ndarray, block: slice, eval_labels: str) -> np.ndarray:
    """The dataset's class ids of frames with scores (N, labels) over the concatenated vector: the
    argmax within its block ("own"), or over every dataset's labels with FOREIGN where another's won
    ("all")."""
    if eval_labels == "own":
        return scores[:, block].argmax(1)
    predicted = scores.argmax(1) - block.start
    return np.where((predicted >= 0) & (predicted < block.stop - block.start), predicted, FOREIGN)


@torch.no_grad()
def recompute_population_statistics(model: SequenceClassifier, sampler: WindowSampler, batches: int, first: int,
                                    device) -> None:
    """Replace the normalisers' running averages by the plain average of their batch statistics over
    `batches` training batches (from iteration `first` on) with the weights as they are now: the
    population statistics of the final model, where the exponential averages mix in batches of
    weights long gone (a "precise BN" estimate)."""
    norms = [m for m in model.modules() if isinstance(m, DDBN)]
    momenta = [bn.momentum for bn in norms]
    was_training = model.training
    model.train()
    try:
        for k in range(batches):
            for bn in norms:
                bn.momentum = 1.0 / (k + 1)  # the mean of the batches so far
            x, mask, _, sizes = sampler.batch(first + k)
            model(x.to(device), domain_sizes=sizes, mask=mask.to(device))
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        model.train(was_training)


def evaluate(model: SequenceClassifier, layout: Layout, config: RecurrentConfig, device,
             sampler: WindowSampler | None = None) -> dict:
    """Per dataset: predictions of every test video, and per-video and pooled scores under both
    conventions of which segments count (`pipeline.evaluation.metrics`): "videos" / "pooled" leave
    out the dataset's background, "videos_mstcn" / "pooled_mstcn" a class named "background" only.
    With a `sampler` and `config.population_batches`, the population statistics are recomputed first
    (from batches past the last training iteration, so the same at every call)."""
    if sampler is not None and config.population_batches and config.model != "lstm":
        recompute_population_statistics(model, sampler, config.population_batches, config.total_iterations, device)
    was_training = model.training
    model.eval()
    results = {}
    for index, split in enumerate(layout.splits):
        background = () if split.background_id is None else (split.background_id,)
        mstcn = mstcn_background(split.class_names)
        predictions, per_video, per_video_mstcn = {}, {}, {}
        for sequence in split.subset("test"):
            predicted, _ = predict_video(model, layout.features(index, sequence), layout.block(index), index,
                                         config, device)
            predictions[sequence.name] = predicted
            per_video[sequence.name] = score_video(predicted, sequence.labels, background)
            per_video_mstcn[sequence.name] = score_video(predicted, sequence.labels, mstcn)
        results[split.dataset] = {"predictions": predictions, "videos": per_video, "pooled": pool(per_video.values()),
                                  "videos_mstcn": per_video_mstcn, "pooled_mstcn": pool(per_video_mstcn.values())}
    model.train(was_training)
    return results


def score_row(ours, mstcn) -> dict:
    """accuracy, edit, f1@k (background left out) and edit_mstcn, f1@k_mstcn (MS-TCN's eval.py)."""
    return {**ours.as_row(), **{f"{key}_mstcn": value for key, value in mstcn.as_row().items() if key != "accuracy"}}


def metrics_rows(results: dict, iteration: int, split: int) -> list[dict]:
    """Rows of metrics.csv: the pooled scores of each dataset at `iteration`."""
    return [{"iteration": iteration, "dataset": dataset, "split": split, "videos": r["pooled"].videos,
             "frames": r["pooled"].frames, **score_row(r["pooled"], r["pooled_mstcn"])}
            for dataset, r in results.items()]
