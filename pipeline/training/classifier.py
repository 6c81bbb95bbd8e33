"""The recurrent stage's model: a recurrent stack (LSTM, BNLSTM or DDLSTM) and a linear classifier over
its every output, and the training loss of its outputs (`frame_loss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import create_model
from .config import RecurrentConfig
from .windows import IGNORE


class SequenceClassifier(nn.Module):
    """A recurrent stack and a linear classifier over its every output; with `input_projection` P > 0 a
    learned linear map of every frame's input to P dimensions before the stack (wide inputs such as
    2048-d features)."""

    def __init__(self, kind: str, input_size: int, num_labels: int, config: RecurrentConfig, num_domains: int):
        super().__init__()
        self.projection = nn.Linear(input_size, config.input_projection) if config.input_projection else None
        self.recurrent = create_model(kind, config.input_projection or input_size, config.hidden,
                                      num_layers=config.layers, num_domains=num_domains, alpha_init=config.alpha_init,
                                      max_timesteps=config.history, learnable_affine=config.learnable_affine)
        self.head = nn.Linear(config.hidden, num_labels)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Every frame's input as the stack reads it (itself without a projection)."""
        return x if self.projection is None else self.projection(x)

    def forward(self, x, domain_sizes=None, domain=None, mask=None, projected: bool = False):
        """(B, T, F) -> (B, T, labels); `projected`: x is already `project`ed (evaluation projects a
        video's frames once, then windows them)."""
        inputs = x if projected else self.project(x)
        return self.head(self.recurrent(inputs, domain_sizes=domain_sizes, domain=domain, mask=mask))

    def alphas(self) -> list[nn.Parameter]:
        """The DDLSTM layers' alphas (none for LSTM and BNLSTM)."""
        return [layer.alpha for layer in self.recurrent.layers if layer.alpha is not None]


def frame_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy of logits (B, T, labels) against targets (B, T), frames marked IGNORE left out:
    averaged over every scored frame ("frames") or summed over each window's frames and averaged over
    the B windows ("windows")."""
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    if reduction == "frames":
        return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)
    if reduction == "windows":
        return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE, reduction="sum") / targets.shape[0]
    raise ValueError(f"loss_reduction must be 'frames' or 'windows', not {reduction!r}")
