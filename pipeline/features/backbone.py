"""The frame classifier: any timm model by name, BN-Inception by default, with optional initial
weights from a local file (the paper starts from HMDB51 weights; nothing is downloaded here)."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch

from . import bninception  # noqa: F401  (registers "bninception" with timm)

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """An initial-weights file that is missing, unreadable, or does not fit the backbone."""


def read_state_dict(path: str | Path) -> dict:
    """A state dict from a .pth/.pt/.bin (torch) or .safetensors file; nested "state_dict"/"model" unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: initial weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file; all mean the same here
        raise WeightsError(f"{path}: cannot read weights ({type(error).__name__}: {error})") from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def create_backbone(name: str, num_classes: int, weights: str | Path | None = None,
                    reverse_channels: bool = False, **kwargs) -> torch.nn.Module:
    """timm model `name` with a `num_classes` classifier, initialised from `weights` if given.

    The classifier of the weights is dropped when its class count differs (fine-tuning to another
    label set); any other missing or unexpected key is an error naming the file. Without weights the
    model trains from scratch, with a logged warning. `reverse_channels` reverses the first
    convolution's input channels (Caffe/TSN BGR checkpoints).
    """
    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except RuntimeError as error:
        raise ValueError(f"unknown backbone {name!r} ({error}); any timm model name works, e.g. 'bninception'") from error
    if weights is None:
        log.warning("backbone %s: no initial weights given, training from scratch", name)
        return model
    state = read_state_dict(weights)
    classifier = model.pretrained_cfg.get("classifier", "fc")
    own = model.state_dict()
    for key in [k for k in state if k.startswith(classifier + ".")]:
        if key in own and state[key].shape != own[key].shape:
            del state[key]  # another label set: this classifier starts fresh
    if reverse_channels:
        first = model.pretrained_cfg.get("first_conv", "conv1") + ".weight"
        if first not in state:
            raise WeightsError(f"{weights}: no first convolution {first!r} to reverse")
        state[first] = state[first].flip(1)
    wrong = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise WeightsError(f"{weights}: shapes differ from backbone {name!r} for {wrong[:5]} "
                           f"({len(wrong)} tensors; another width or variant?)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(classifier + ".")]
    if missing or unexpected:
        raise WeightsError(f"{weights}: does not fit backbone {name!r}: missing {missing[:5]} "
                           f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    log.info("backbone %s: initial weights from %s", name, weights)
    return model
