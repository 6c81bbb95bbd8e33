"""Choice of the torch device: CUDA when present, else the CPU; overridable by name."""

from __future__ import annotations

import torch


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else the CPU; any other torch device name is checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but PyTorch sees no CUDA device here")
    return device
