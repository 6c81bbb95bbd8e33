"""The one mismatch policy for per-frame sources whose length disagrees with the frame-wise labels.

Decoded videos (`frames.py`) and precomputed feature arrays (`precomputed.py`) of the public
datasets often differ from their labels by a few frames. The label count is the reference: extra
source frames at the end are dropped, missing ones repeat the last source frame, as long as the
difference is within the tolerance, the larger of `tolerance_frames` and `tolerance_fraction` of
the label count. Beyond that the source is an error naming its file.
"""

from __future__ import annotations

import numpy as np


def allowed_mismatch(num_labels: int, tolerance_frames: int, tolerance_fraction: float) -> int:
    """Frames a source may differ from its `num_labels` labels."""
    return max(tolerance_frames, int(tolerance_fraction * num_labels))


def alignment_action(found: int, num_labels: int) -> str:
    """What the policy does to a source of `found` frames: "exact", "dropped N" or "padded N"."""
    if found == num_labels:
        return "exact"
    if found > num_labels:
        return f"dropped {found - num_labels}"
    return f"padded {num_labels - found}"


def aligned_index(found: int, num_labels: int) -> np.ndarray:
    """Source frame of each of the `num_labels` labelled frames: itself, or the source's last frame
    where the source is short."""
    return np.minimum(np.arange(num_labels), found - 1)
