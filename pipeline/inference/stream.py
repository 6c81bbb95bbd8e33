"""Frame-at-a-time recognition from a bundle: `ddlstm stream`.

Frames arrive one at a time (decoded from a video as it is read, from a frame store, or rows of a
features array) and each frame's label is out as soon as that frame is in: the same chain as
`predict.py` (frame classifier, boundary LSTM, recurrent model), and the same online evaluation, each
frame classified from the window of `history` frames that ends at it, from a zero state. So a frame
costs one window of the recurrent model (and one of the boundary LSTM), and the engine keeps only the
last `history` frames' inputs (`StreamEngine`): memory is bounded by the history, not by the video's
length. A model trained with look-ahead classifies frame k once frame k + history / 2 is in; the last
frames are classified when the input ends (`finish`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.frame_store import FrameStore
from ..data.frames import iter_frames
from ..training.boundary import boundary_at
from ..training.evaluation import labels_from_scores
from ..training.windows import gather_windows
from .predict import FEATURES, STORE, Predictor, input_kind


@dataclass
class Label:
    frame: int  # the processed frame (at the bundle's rate), from 0
    name: str
    confidence: float


@dataclass
class Timing:
    """Seconds spent on each frame (from its arrival to its label's being out) and in all."""

    per_frame: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> dict:
        wall = time.monotonic() - self.started
        values = np.asarray(self.per_frame or [0.0]) * 1000
        return {"frames": len(self.per_frame), "seconds": round(wall, 3),
                "frames_per_s": round(len(self.per_frame) / max(wall, 1e-9), 1),
                "latency_ms_median": round(float(np.median(values)), 2),
                "latency_ms_p95": round(float(np.percentile(values, 95)), 2)}


class StreamEngine:
    """Push a frame's inputs, get the labels that are due: `push(logits, values)` then `finish()`."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        config = predictor.config
        self.history = config.history
        self.lookahead = config.lookahead_frames
        self.align = config.short_windows
        boundary = predictor.part["boundary"]
        self.boundary_history = boundary["history"] if boundary else 0
        self.recent_logits = deque(maxlen=max(1, self.boundary_history))  # standardised, for the boundary LSTM
        self.recent_inputs = deque(maxlen=self.history)  # the recurrent model's inputs (projected, if it projects)
        self.seen = 0

    @torch.no_grad()
    def push(self, logits: np.ndarray, values: np.ndarray | None = None) -> list[Label]:
        """One frame's logits (C,) (and its standardised features (D,) where the model reads them)."""
        predictor = self.predictor
        standardised = predictor.standardised(logits[None])
        boundary = None
        if predictor.boundary is not None:
            self.recent_logits.append(standardised[0])
            recent = np.stack(self.recent_logits)
            boundary = boundary_at(predictor.boundary, recent, np.array([len(recent) - 1]), self.boundary_history)
        inputs = predictor.inputs(standardised, boundary, None if values is None else values[None])
        if predictor.model.projection is not None:
            inputs = predictor.model.project(torch.from_numpy(inputs).to(predictor.device)).float().cpu().numpy()
        self.recent_inputs.append(inputs[0])
        self.seen += 1
        due = self.seen - 1 - self.lookahead
        return [self._classify(due)] if due >= 0 else []

    def finish(self) -> list[Label]:
        """The frames a look-ahead model still owes once the input has ended."""
        return [self._classify(k) for k in range(max(0, self.seen - self.lookahead), self.seen)]

    def _classify(self, frame: int) -> Label:
        predictor = self.predictor
        recent = np.stack(self.recent_inputs)
        first = self.seen - len(recent)  # the buffer holds frames first .. seen - 1
        x, mask = gather_windows(recent, np.array([frame + self.lookahead - first]), self.history, self.align)
        out = predictor.model(torch.from_numpy(x).to(predictor.device), domain=predictor.index,
                              mask=torch.from_numpy(mask).to(predictor.device),
                              projected=predictor.model.projection is not None)
        scores = out[:, -1].float().cpu().numpy()
        ids = labels_from_scores(scores, predictor.block, predictor.config.eval_labels)
        names, confidence = predictor.labels(ids, scores)
        return Label(frame, names[0], float(confidence[0]))


def frames_of(predictor: Predictor, path: Path) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(logits (C,), features (D,) or None) of each processed frame of an input, as it is read."""
    path = Path(path)
    kind = input_kind(path)
    predictor._check_kind(path, kind)
    if kind == FEATURES:
        from ..features.linear import linear_logits

        array, rows, _ = predictor.features(path)
        for k in range(len(rows)):
            row = array.read(rows[k:k + 1])
            logits = linear_logits(predictor.classifier, lambda index, row=row: row[index], 1, predictor.device)[0]
            values = None
            if predictor.part["inputs"] == "features":
                values = ((row - predictor.feature_mean) / predictor.feature_std)[0]
            yield logits, values
        return
    if kind == STORE:
        with FrameStore(path) as store:
            for k in range(len(store)):
                yield predictor.frame_logits(store.read([k]))[0], None
        return
    size = predictor.part["frame_classifier"]["frame_size"]
    for frame in iter_frames(path, predictor.bundle.fps, tuple(size) if isinstance(size, list) else size):
        yield predictor.frame_logits(frame[None])[0], None


def stream(predictor: Predictor, path: str | Path, emit) -> dict:
    """Run an input through a `StreamEngine`, `emit(label)` as each is out; the timing summary."""
    engine = StreamEngine(predictor)
    timing = Timing()
    source = frames_of(predictor, Path(path))
    while True:
        arrived = time.monotonic()
        try:
            logits, values = next(source)  # reading and classifying the frame itself count towards its latency
        except StopIteration:
            break
        labels = engine.push(logits, values)
        for label in labels:
            emit(label)
        timing.per_frame.append(time.monotonic() - arrived)
    for label in engine.finish():
        emit(label)
    return timing.summary()
