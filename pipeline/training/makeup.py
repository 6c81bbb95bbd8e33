"""The makeup of a joint batch adapted during training: the paper's future work B ("automatically
adjusting the makeup of each batch could provide performance improvements, in a similar fashion to the
way alpha values are learned"), with `domain_share: adaptive`.

Signal: each dataset's relative training loss. Every step already scores each dataset's block of the
batch, so the frame-mean cross-entropy of each block (`domain_losses`) costs no extra forward pass. It
is smoothed over steps by an exponential moving average (`share_ema`, the weight of the past) and
divided by the dataset's own loss at the first step:

    r_i = ema_i / loss_i(first step)

the fraction of its initial loss dataset i still has: GradNorm's "inverse training rate" (Chen et
al., ICML 2018). Dividing by the first loss compares datasets on their own scales: the label vector
is the concatenation of every dataset's classes, so every dataset starts near log(L1 + L2), but each
falls towards a floor of its own (its number of classes, how predictable its frames are).

Rule: the dataset that has come down least gets more of the next batch,

    s_i = m + (1 - d m) r_i / sum_k r_k        (m = `share_min`, d datasets)

so every share lies in [m, 1 - (d - 1) m] and the shares sum to 1: bounded away from 0 and 1 by
construction, not by clipping, and for any number of datasets (a pair: s_1 in [0.1, 0.9] with the
default m = 0.1). Every dataset starts at 1/d (r_i = 1 for all). The windows of each dataset are the
shares of the batch rounded by largest remainders (`apportion`); m x batch >= 1 keeps every dataset
in every batch, which DDBN needs to see its domains. A dataset whose block has no scored frame in a
step (look-ahead targets near a video's start only) keeps its moving average.

Why this signal and not the others. A held-out slice of the training videos would measure
generalisation rather than fit, but costs an evaluation pass per update and takes videos from the
small datasets' training splits (50 Salads has about 40 per split). The recent loss decrease (a
learning-progress curriculum) goes to zero for every dataset once training slows, where the rule
becomes noise-driven; the relative loss stays defined. What it cannot tell apart: a dataset that is
lagging because it needs more windows from one whose loss floor is simply higher; the bound `m`
keeps the other dataset in every batch either way.

State: the current shares, the moving averages and the first losses, all plain numbers (no random
generator), in the training checkpoint (`Trainer.extra`), so a killed and resumed run makes the
same batches as an uninterrupted one. Each step's makeup is logged (`shares.csv`: its windows and
share per dataset, and each dataset's smoothed loss after the step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .windows import IGNORE


def apportion(shares: list[float], total: int) -> list[int]:
    """Whole windows per dataset summing to `total`: each share's floor, the rest to the largest
    remainders (the earlier dataset on a tie)."""
    exact = [share * total for share in shares]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: total - sum(counts)]:
        counts[k] += 1
    return counts


@torch.no_grad()
def domain_losses(logits: torch.Tensor, targets: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """(d, 2): per dataset block of the batch (rows in `sizes` order), the summed cross-entropy of its
    scored frames and their number. logits (B, T, labels), targets (B, T)."""
    frames = F.cross_entropy(logits.detach().reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                             ignore_index=IGNORE, reduction="none").reshape(targets.shape)  # (B, T), 0 where ignored
    rows = torch.stack([frames.sum(1), (targets != IGNORE).sum(1).to(frames.dtype)], 1)  # (B, 2)
    return torch.stack([block.sum(0) for block in rows.split(list(sizes))])


class AdaptiveShare:
    """The share of each of `datasets` datasets in the next batch of `batch_size` windows, updated from
    each step's per-dataset losses (module docstring)."""

    def __init__(self, datasets: int, batch_size: int, share_min: float, ema: float):
        if datasets < 2:
            raise ValueError(f"an adaptive batch makeup needs 2 or more datasets, got {datasets}")
        if not 0 < share_min * datasets < 1:
            raise ValueError(f"share_min must lie in (0, 1/{datasets}), got {share_min}")
        self.datasets, self.batch_size, self.share_min, self.ema = datasets, batch_size, share_min, ema
        self.shares = [1.0 / datasets] * datasets
        self.smoothed: list[float] | None = None  # moving average of each dataset's frame-mean loss
        self.first: list[float] | None = None  # each dataset's loss at its first scored step

    def sizes(self) -> list[int]:
        """Windows of each dataset in the next batch."""
        return apportion(self.shares, self.batch_size)

    def update(self, sums_and_counts: list[list[float]]) -> None:
        """One step's (summed loss, scored frames) per dataset (`domain_losses`): the moving averages, then
        the next shares."""
        losses = [total / count if count > 0 else None for total, count in sums_and_counts]
        if self.smoothed is None:
            self.smoothed, self.first = [None] * self.datasets, [None] * self.datasets
        for k, loss in enumerate(losses):
            if loss is None:
                continue
            if self.smoothed[k] is None:  # its first scored step
                self.smoothed[k] = self.first[k] = loss
            else:
                self.smoothed[k] = self.ema * self.smoothed[k] + (1 - self.ema) * loss
        if any(value is None for value in self.smoothed):
            return  # a dataset not yet scored: the shares stay as they are
        remaining = [s / f if f > 0 else 1.0 for s, f in zip(self.smoothed, self.first)]
        total = sum(remaining)
        free = 1 - self.datasets * self.share_min
        self.shares = [self.share_min + free * (r / total if total > 0 else 1 / self.datasets) for r in remaining]

    def row(self, iteration: int, sizes: list[int], shares: list[float]) -> dict:
        """The log row of a step done with `sizes` windows at `shares`: its makeup and the smoothed losses after it."""
        row = {"iteration": iteration}
        row.update({f"windows_{k + 1}": n for k, n in enumerate(sizes)})
        row.update({f"share_{k + 1}": s for k, s in enumerate(shares)})
        row.update({f"loss_{k + 1}": ("" if s is None else s) for k, s in enumerate(self.smoothed or [None] * len(sizes))})
        return row

    def state_dict(self) -> dict:
        return {"shares": list(self.shares), "smoothed": self.smoothed, "first": self.first}

    def load_state_dict(self, state: dict) -> None:
        if len(state["shares"]) != self.datasets:
            raise ValueError(f"the checkpoint's batch makeup has {len(state['shares'])} datasets, the run {self.datasets}")
        self.shares = [float(s) for s in state["shares"]]
        self.smoothed = None if state["smoothed"] is None else list(state["smoothed"])
        self.first = None if state["first"] is None else list(state["first"])
