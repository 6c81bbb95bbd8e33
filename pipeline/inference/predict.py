"""Labels for new recordings from a bundle (`bundle.py`): `ddlstm predict`.

Every input goes through the chain that produced the run's own predictions, computed the same way:

    a video        decoded at the bundle's frame rate and size (`pipeline.data.frames.iter_frames`)
    a frame store  (`<video>.npy` uint8 frames, or `.h5`), as the workflow's frames step wrote it
    a features array  (`.npy`, D x T as MS-TCN stores them, or T x D), at the dataset's own rate,
                   resampled to the bundle's by the rule labels follow
      -> the dataset's frame classifier (CNN in batches as extraction runs it, or the linear
         classifier in chunks) -> logits standardised with the training logits' statistics
      -> the boundary LSTM over windows of its history -> the recurrent model's input vector, the
         dataset's block placed as in training -> online evaluation (`predict_video`: each frame from
         the window that ends at it, with the dataset's population statistics).

On a test video of the run this reproduces its `predictions.npz` (the tests check it). The labels are
written at the input's own frame rate: input frame j takes the label of the last processed frame at or
before its time, so the output stays causal. A frame whose best label is another dataset's (the run's
`eval_labels: all`) is written as `<dataset>:<class>`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import resample_index
from ..data.frame_store import FrameStore
from ..data.frames import iter_frames
from ..data.precomputed import FeatureArray, FeatureError, open_array
from ..evaluation.metrics import segments
from ..io import write_csv, write_text
from ..training.boundary import boundary_of
from ..training.evaluation import FOREIGN, predict_video
from .bundle import Bundle, BundleError

log = logging.getLogger(__name__)
VIDEO, STORE, FEATURES = "video", "frame store", "features array"


def input_kind(path: Path) -> str:
    """What an input file is: a frame store (.h5, or .npy of (T, H, W, 3) uint8), a features array
    (.npy, 2-D), or else a video; FeatureError naming the file for an .npy that is neither."""
    if path.suffix == ".h5":
        return STORE
    if path.suffix != ".npy":
        return VIDEO
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file does not exist")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FeatureError(f"{path}: not a readable .npy array ({error})") from None
    if isinstance(array, np.ndarray) and array.ndim == 4 and array.dtype == np.uint8 and array.shape[-1] == 3:
        return STORE
    return FEATURES


@dataclass
class Prediction:
    """One input's labels: per processed frame (at the bundle's rate) and per input frame."""

    path: Path
    ids: np.ndarray  # (T,) the dataset's class ids per processed frame, FOREIGN where another dataset's won
    names: list[str]  # (T,) label names per processed frame
    confidence: np.ndarray  # (T,) the chosen label's softmax probability
    input_fps: float
    input_frames: int
    fps: float

    def at_input_rate(self) -> np.ndarray:
        """Processed frame shown at each input frame: the last at or before its time (causal)."""
        ratio = self.fps / self.input_fps
        return np.minimum(np.floor(np.arange(self.input_frames) * ratio + 1e-9).astype(np.int64), len(self.ids) - 1)


class Predictor:
    """A bundle's models for one of its datasets, loaded once for any number of inputs."""

    def __init__(self, bundle: Bundle, dataset: str, device="cpu", lookahead: bool = False):
        self.bundle = bundle
        self.name = dataset
        self.part = bundle.dataset(dataset)
        self.config = bundle.config
        if self.config.lookahead and not lookahead:
            raise BundleError(f"{bundle.path}: its model was trained with look-ahead (it classifies a frame from "
                              f"{self.config.lookahead_frames} frames after it): pass --lookahead")
        if lookahead and not self.config.lookahead:
            raise BundleError(f"{bundle.path}: its model was trained online, without look-ahead: --lookahead does "
                              "not apply")
        self.device = torch.device(device)
        self.classifier = bundle.frame_classifier(dataset, self.device)
        self.boundary = bundle.boundary_model(dataset, self.device)
        self.model = bundle.recurrent_model(self.device)
        self.layout = bundle.content["recurrent"]["layout"]
        self.index = self.part["index"]
        classes = len(self.part["class_names"])
        self.block = slice(self.layout["offsets"][self.index], self.layout["offsets"][self.index] + classes)
        standardisation = self.part["logits_standardisation"]
        self.mean, self.std = standardisation["mean"].numpy(), standardisation["std"].numpy()
        features = self.part["feature_standardisation"]
        self.feature_mean = None if features is None else features["mean"].numpy()
        self.feature_std = None if features is None else features["std"].numpy()
        frame = self.part["frame_classifier"]
        if frame["kind"] == "cnn":
            from ..features.frame_batches import Preprocess, prepare_network

            self.preprocess = Preprocess(frame["input_size"], frame["mean"], frame["std"], train=False)
            prepare_network(self.classifier, self.device)  # the memory format extraction ran it in
        # every dataset's label names, for a frame whose best label is another dataset's
        self.global_names = [f"{other}:{label}" for other, part in sorted(bundle.content["datasets"].items(),
                                                                          key=lambda item: item[1]["index"])
                             for label in part["class_names"]]

    # -- inputs -> logits ---------------------------------------------------------------------------

    def _check_kind(self, path: Path, kind: str) -> None:
        source = self.part["source"]
        if (kind == FEATURES) != (source == "features"):
            wanted = "a features array (.npy, D x T)" if source == "features" else "a video or a frame store"
            raise BundleError(f"{path}: a {kind}, but dataset {self.name!r} of {self.bundle.path} was trained from "
                              f"its {source}: give {wanted}")

    def frame_logits(self, frames: np.ndarray) -> np.ndarray:
        """(N, C) float32 logits of uint8 frames (N, H, W, 3), as extraction computes them."""
        from ..features.extract import frame_logits

        return frame_logits(self.classifier, self.preprocess, frames, self.device,
                            self.part["frame_classifier"]["precision"])

    def features(self, path: Path) -> tuple[FeatureArray, np.ndarray, int]:
        """A features array's header, the rows shown at each processed frame, and its frame count."""
        part = self.part["frame_classifier"]
        shape = open_array(path).shape
        dim, layout = part["dim"], part["feature_layout"]
        if layout == "auto":
            fits = [name for name, axis in (("DxT", 0), ("TxD", 1)) if shape[axis] == dim]
            if not fits:
                raise FeatureError(f"{path}: shape {shape} has no axis of {dim} feature dimensions, which dataset "
                                   f"{self.name!r} of {self.bundle.path} was trained with")
            if len(fits) == 2:
                log.warning("%s: both axes have %d values; read as D x T (MS-TCN's layout)", path, dim)
            layout = fits[0]
        frames, found = (shape[1], shape[0]) if layout == "DxT" else shape
        if found != dim:
            raise FeatureError(f"{path}: {found} feature dimensions as {layout}; dataset {self.name!r} of "
                               f"{self.bundle.path} was trained with {dim}")
        array = FeatureArray(Path(path), layout, frames, dim)
        return array, resample_index(frames, self.part["label_fps"], self.bundle.fps), frames

    def logits(self, path: Path):
        """(logits (T, C) at the bundle's rate, the input's rate, its frame count, and the features
        themselves (T, D) where the run fed them to the recurrent model, else None)."""
        path = Path(path)
        kind = input_kind(path)
        self._check_kind(path, kind)
        if kind == FEATURES:
            from ..features.linear import linear_logits

            array, rows, frames = self.features(path)
            logits = linear_logits(self.classifier, lambda index: array.read(rows[index]), len(rows), self.device)
            values = None
            if self.part["inputs"] == "features":
                values = (array.read(rows) - self.feature_mean) / self.feature_std
            return logits, self.part["label_fps"], frames, values
        batch = self.part["frame_classifier"]["batch_size"]
        chunks = []
        if kind == STORE:
            with FrameStore(path) as store:
                for start in range(0, len(store), batch):
                    chunks.append(self.frame_logits(store.read(np.arange(start, min(len(store), start + batch)))))
                return np.concatenate(chunks), self.bundle.fps, len(store), None
        size = self.part["frame_classifier"]["frame_size"]
        info: dict = {}
        pending = []
        for frame in iter_frames(path, self.bundle.fps, tuple(size) if isinstance(size, list) else size, info):
            pending.append(frame)
            if len(pending) == batch:
                chunks.append(self.frame_logits(np.stack(pending)))
                pending = []
        if pending:
            chunks.append(self.frame_logits(np.stack(pending)))
        return np.concatenate(chunks), info.get("native_fps") or self.bundle.fps, info["decoded"], None

    # -- logits -> labels ---------------------------------------------------------------------------

    def standardised(self, logits: np.ndarray) -> np.ndarray:
        return ((logits - self.mean) / self.std).astype(np.float32)

    def inputs(self, standardised: np.ndarray, boundary: np.ndarray | None, values: np.ndarray | None = None):
        """(T, input_size) recurrent inputs: the dataset's block (its logits, or its features), boundary after."""
        layout = self.layout
        out = np.zeros((len(standardised), self.bundle.content["recurrent"]["input_size"]), np.float32)
        start = layout["input_offsets"][self.index]
        out[:, start:start + layout["widths"][self.index]] = standardised if values is None else values
        if layout["boundary"]:
            out[:, layout["logit_columns"]:] = boundary
        return out

    def labels(self, predicted: np.ndarray, scores: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Label names and the chosen label's softmax probability, over the labels the run's
        `eval_labels` lets a frame take."""
        own = self.config.eval_labels == "own"
        considered = scores[:, self.block] if own else scores
        shifted = considered - considered.max(1, keepdims=True)
        probability = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        winner = considered.argmax(1)
        names = [self.part["class_names"][p] if p != FOREIGN else self.global_names[w]
                 for p, w in zip(predicted.tolist(), winner.tolist())]
        return names, probability[np.arange(len(winner)), winner].astype(np.float32)

    @torch.no_grad()
    def predict(self, path: str | Path) -> Prediction:
        path = Path(path)
        logits, input_fps, input_frames, values = self.logits(path)
        standardised = self.standardised(logits)
        boundary = None
        if self.boundary is not None:
            part = self.part["boundary"]
            boundary = boundary_of(self.boundary, standardised, part["history"], part["eval_batch"])
        predicted, scores = predict_video(self.model, self.inputs(standardised, boundary, values), self.block,
                                          self.index, self.config, self.device)
        names, confidence = self.labels(predicted, scores)
        return Prediction(path, predicted, names, confidence, float(input_fps), int(input_frames), self.bundle.fps)


def write_prediction(prediction: Prediction, output_dir: str | Path) -> tuple[Path, Path]:
    """`<output>/<input stem>.txt` (MS-TCN's ground-truth layout: one label per input frame) and
    `<input stem>.segments.csv` (start and end frame, end exclusive, at the input's rate, their times,
    the label and its mean confidence), each written whole or not at all."""
    output_dir = Path(output_dir)
    shown = prediction.at_input_rate()
    names = [prediction.names[k] for k in shown]
    stem = prediction.path.stem
    text = output_dir / f"{stem}.txt"
    write_text(text, "".join(f"{name}\n" for name in names))
    ids = np.unique(names, return_inverse=True)[1]
    confidence = prediction.confidence[shown]
    rows = [{"start_frame": s.start, "end_frame": s.end, "start_s": round(s.start / prediction.input_fps, 3),
             "end_s": round(s.end / prediction.input_fps, 3), "label": names[s.start],
             "confidence": round(float(confidence[s.start:s.end].mean()), 4)} for s in segments(ids)]
    table = output_dir / f"{stem}.segments.csv"
    write_csv(rows, table, fieldnames=["start_frame", "end_frame", "start_s", "end_s", "label", "confidence"])
    return text, table


def predict_files(predictor: Predictor, paths: list, output_dir: str | Path) -> list[Prediction]:
    """Every input in turn, a progress line each; an input that fails is an error naming it, the
    outputs of those before it stay (each is complete)."""
    out = []
    for number, path in enumerate(map(Path, paths), start=1):
        started = time.monotonic()
        prediction = predictor.predict(path)
        write_prediction(prediction, output_dir)
        seconds = time.monotonic() - started
        log.info("[predict %d/%d] %s: %d frames at %g fps in %.1f s (%.0f frames/s)", number, len(paths), path,
                 prediction.input_frames, prediction.input_fps, seconds, len(prediction.ids) / max(seconds, 1e-9))
        out.append(prediction)
    return out
