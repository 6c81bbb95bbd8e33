"""Windows of `history` frames, as the recurrent models see a video (docs/method.md §6).

The window of frame k ends at frame k + lookahead (lookahead = 0 online, history // 2 with
look-ahead) and starts history - 1 frames earlier. Frames outside the video are padding: masked,
so they enter no batch statistic and leave the state untouched (zero before the video starts).
The network's output at a window's last timestep classifies frame k, and in training the output
at timestep t is scored against the frame `lookahead` timesteps before it (targets that fall
before the window or outside the video are ignored).

Short windows. A window that would start before the video (its end e < history - 1) holds only
e + 1 real frames. Where they sit decides which timestep's batch statistics normalise them (the
BN models keep statistics per timestep): `align="end"` keeps them at the window's last timesteps
after masked padding, as for every other window; `align="start"` puts them at timesteps 0..e,
with the padding after them, so a video's first frame is normalised with the statistics of
timestep 0, where every window's state is as fresh as its own. A masked timestep carries the
state through, so the output at the last timestep is the state after frame e in both readings.
"""

from __future__ import annotations

import numpy as np

IGNORE = -100  # cross-entropy's ignore_index
ALIGNMENTS = ("end", "start")


def window_index(ends: np.ndarray, history: int, length: int, align: str = "end") -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (N, history) of windows ending at `ends`, clipped into the video, and their
    mask (True for frames inside the video); `align` places short windows (module docstring)."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, not {align!r}")
    steps = np.arange(history)[None, :]
    index = ends[:, None] - (history - 1) + steps
    if align == "start":
        short = ends < history - 1
        index[short] = np.broadcast_to(steps, (int(short.sum()), history))
        mask = (index >= 0) & (index < length) & (index <= ends[:, None])
    else:
        mask = (index >= 0) & (index < length)
    return np.clip(index, 0, length - 1), mask


def gather_windows(features: np.ndarray, ends: np.ndarray, history: int,
                   align: str = "end") -> tuple[np.ndarray, np.ndarray]:
    """(N, history, D) features of the windows ending at `ends` (zeros where masked) and the mask."""
    index, mask = window_index(ends, history, len(features), align)
    windows = features[index]
    windows[~mask] = 0.0
    return windows, mask


def window_targets(labels: np.ndarray, ends: np.ndarray, history: int, lookahead: int,
                   align: str = "end") -> np.ndarray:
    """(N, history) labels scored at each timestep: the frame `lookahead` steps earlier, or IGNORE."""
    index, mask = window_index(ends, history, len(labels), align)
    target_mask = np.roll(mask, lookahead, axis=1)
    target_mask[:, :lookahead] = False  # their frames lie before the window: never seen
    targets = np.where(target_mask, labels[np.roll(index, lookahead, axis=1)], IGNORE)
    return targets.astype(np.int64)


def sample_ends(lengths: list[int], count: int, lookahead: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` random (video, window end): frames uniform over all frames of all videos."""
    lengths = np.asarray(lengths)
    cumulative = np.cumsum(lengths)
    picks = rng.integers(0, cumulative[-1], count)
    videos = np.searchsorted(cumulative, picks, side="right")
    frames = picks - np.concatenate([[0], cumulative[:-1]])[videos]
    return videos, frames + lookahead


def stack_by_video(videos: np.ndarray, ends: np.ndarray, take) -> list[np.ndarray]:
    """A training batch of windows from many videos, gathered one video at a time.

    `take(video, ends)` returns arrays with one row per window end of that video (e.g. windows,
    masks, targets); the rows of all videos come back stacked in the order of (`videos`, `ends`),
    which matters: DDBN weighs a row by its position in the batch.
    """
    stacked = None
    for video in np.unique(videos):
        rows = np.flatnonzero(videos == video)
        pieces = take(int(video), ends[rows])
        if stacked is None:
            stacked = [np.empty((len(videos), *piece.shape[1:]), piece.dtype) for piece in pieces]
        for out, piece in zip(stacked, pieces):
            out[rows] = piece
    return stacked
