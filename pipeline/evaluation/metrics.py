"""Frame-wise and segmental metrics of action segmentation, with MS-TCN's definitions.

Abu Farha & Gall, "MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation",
CVPR 2019 (its eval.py), after Lea et al.'s temporal convolutional networks:

* frame accuracy: correct frames / all frames (background frames included);
* segments: maximal runs of one label, end exclusive; segments of a background class are
  dropped before the segmental metrics;
* edit score: 100 * (1 - Levenshtein(predicted labels, true labels) / max(lengths)) over the two
  sequences of segment labels;
* F1@tau: each predicted segment, in order, is matched with the true segment of the same label
  of highest IoU, used or not; it is a true positive when that IoU >= tau and that true segment is
  not yet used (it then becomes used), else a false positive, even where another true segment of
  the label is still free (as MS-TCN's eval.py does); true segments never used are false negatives.

Over a set of videos, as MS-TCN reports them: accuracy from the summed frame counts, edit as the
mean of the videos' scores, F1 from the summed true/false positive and false negative counts.

Which segments count. Our tables leave out the dataset's own background class (SIL for Breakfast,
the added background of 50 Salads and MPII). MS-TCN's eval.py leaves out only a class literally
named "background" (`mstcn_background`): its published Breakfast numbers count SIL segments. The
recurrent stage reports both (columns `edit`, `f1@k` and `edit_mstcn`, `f1@k_mstcn`), so that our
numbers can stand beside MS-TCN-family results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

OVERLAPS = (0.10, 0.25, 0.50)
MSTCN_BACKGROUND = "background"  # the one class name MS-TCN's eval.py leaves out of segments


def mstcn_background(class_names: Sequence[str]) -> tuple[int, ...]:
    """The class ids MS-TCN's eval.py would leave out of the segmental metrics."""
    return tuple(i for i, name in enumerate(class_names) if name == MSTCN_BACKGROUND)


@dataclass(frozen=True)
class Segment:
    label: int
    start: int
    end: int  # exclusive


def segments(labels: Sequence[int], background: Iterable[int] = ()) -> list[Segment]:
    """Maximal runs of equal labels, without those of a background class."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    bounds = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [labels.size]])
    skip = set(background)
    return [Segment(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends)
            if int(labels[s]) not in skip]


def _check_pair(predicted, truth) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape or predicted.ndim != 1:
        raise ValueError(
            f"predicted and true labels must be 1-D of one length, got {predicted.shape} and {truth.shape}"
        )
    return predicted, truth


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def edit_score(predicted, truth, background: Iterable[int] = ()) -> float:
    """Segmental edit score in [0, 100]; 100 when neither has a (non-background) segment."""
    predicted, truth = _check_pair(predicted, truth)
    background = tuple(background)
    p = [s.label for s in segments(predicted, background)]
    t = [s.label for s in segments(truth, background)]
    longest = max(len(p), len(t))
    if longest == 0:
        return 100.0
    return 100.0 * (1 - levenshtein(p, t) / longest)


def f1_counts(predicted, truth, overlap: float, background: Iterable[int] = ()) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of segments at IoU threshold `overlap`."""
    predicted, truth = _check_pair(predicted, truth)
    background = tuple(background)
    pred_segs = segments(predicted, background)
    true_segs = segments(truth, background)
    used = [False] * len(true_segs)
    tp = fp = 0
    for p in pred_segs:
        best, best_iou = -1, -1.0
        for k, t in enumerate(true_segs):
            if t.label != p.label:
                continue
            inter = min(p.end, t.end) - max(p.start, t.start)
            union = max(p.end, t.end) - min(p.start, t.start)
            iou = max(inter, 0) / union
            if iou > best_iou:
                best, best_iou = k, iou
        if best >= 0 and best_iou >= overlap and not used[best]:
            tp += 1
            used[best] = True
        else:
            fp += 1
    return tp, fp, len(true_segs) - sum(used)


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 in [0, 100] from segment counts (0 when there is no true positive)."""
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 100.0 * 2 * precision * recall / (precision + recall)


@dataclass
class SegmentationScores:
    """Metrics of one video or of a set of videos (see the module docstring for the pooling)."""

    frames: int = 0
    correct: int = 0
    edit: float = 0.0
    f1_counts: dict[float, tuple[int, int, int]] = field(default_factory=dict)
    videos: int = 0

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.frames if self.frames else 0.0

    def f1(self, overlap: float) -> float:
        return f1_from_counts(*self.f1_counts[overlap])

    def as_row(self) -> dict[str, float]:
        row = {"accuracy": self.accuracy, "edit": self.edit}
        for overlap in sorted(self.f1_counts):
            row[f"f1@{round(overlap * 100)}"] = self.f1(overlap)
        return row


def score_video(predicted, truth, background: Iterable[int] = (),
                overlaps: Sequence[float] = OVERLAPS) -> SegmentationScores:
    """All metrics of one video's frame-wise predicted and true labels."""
    predicted, truth = _check_pair(predicted, truth)
    background = tuple(background)
    return SegmentationScores(
        frames=int(truth.size),
        correct=int((predicted == truth).sum()),
        edit=edit_score(predicted, truth, background),
        f1_counts={o: f1_counts(predicted, truth, o, background) for o in overlaps},
        videos=1,
    )


def pool(scores: Iterable[SegmentationScores]) -> SegmentationScores:
    """Scores of a set of videos: summed frame and segment counts, mean edit score."""
    scores = list(scores)
    if not scores:
        raise ValueError("no videos to pool")
    overlaps = scores[0].f1_counts.keys()
    return SegmentationScores(
        frames=sum(s.frames for s in scores),
        correct=sum(s.correct for s in scores),
        edit=sum(s.edit * s.videos for s in scores) / sum(s.videos for s in scores),
        f1_counts={o: tuple(sum(s.f1_counts[o][k] for s in scores) for k in range(3))
                   for o in overlaps},
        videos=sum(s.videos for s in scores),
    )
