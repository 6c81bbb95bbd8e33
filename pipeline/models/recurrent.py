"""Stacked LSTM, BNLSTM and DDLSTM models (batch-first), and the registry that builds them by name.

    m = DDLSTM(input_size, hidden_size, num_layers, num_domains=2, alpha_init=0.75)
    out = m(x, domain_sizes=[n1, n2])        # training: x (B, T, F) -> (B, T, hidden_size)
    m.eval(); out = m(x, domain=0)           # evaluation with domain 0's population statistics
    y_t, state = m.step(x[:, t], state, domain=0)   # streaming, one frame at a time

All three classes take the same arguments, so training code can pass `domain_sizes` and `domain`
to any of them: LSTM and BNLSTM check and then ignore them (BNLSTM normalises the whole batch as
one population, as in the paper's "Joint BNLSTM").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .contribution import check_domain_sizes
from .layers import IMPLEMENTATIONS, RecurrentLayer

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Class decorator: make `create_model(name, ...)` build this model."""

    def add(cls):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = cls
        return cls

    return add


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, *args, **kwargs) -> nn.Module:
    """Build a registered model from its config string ("lstm", "bnlstm" or "ddlstm")."""
    try:
        cls = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None
    return cls(*args, **kwargs)


@dataclass
class StreamState:
    """Carried state of a streaming model: per-layer (h, c) and the next timestep index."""

    h: list[torch.Tensor]
    c: list[torch.Tensor]
    t: int = 0


class RecurrentStack(nn.Module):
    """`num_layers` recurrent layers of one kind; subclasses fix the normalisation."""

    normalisation = "none"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        num_domains: int = 2,
        alpha_init: float = 0.75,
        max_timesteps: int = 200,
        learnable_affine: bool = False,
        gamma_init: float = 0.1,
        beta_init: float = 0.0,
        eps: float = 1e-5,
        momentum: float = 0.1,
        implementation: str = "auto",
    ):
        super().__init__()
        if not 1 <= num_layers <= 10:
            raise ValueError(f"num_layers must lie in 1..10, got {num_layers}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_domains = num_domains
        self.implementation = implementation
        self.layers = nn.ModuleList(
            RecurrentLayer(
                input_size if layer == 0 else hidden_size,
                hidden_size,
                normalisation=self.normalisation,
                num_domains=num_domains,
                alpha_init=alpha_init,
                max_timesteps=max_timesteps,
                learnable_affine=learnable_affine,
                gamma_init=gamma_init,
                beta_init=beta_init,
                eps=eps,
                momentum=momentum,
            )
            for layer in range(num_layers)
        )

    def _check(self, x: torch.Tensor, domain_sizes, domain):
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        if domain_sizes is not None:
            domain_sizes = check_domain_sizes(domain_sizes, self.num_domains, x.shape[0])
        if self.normalisation != "ddbn":
            return None, None  # one population: the rows' domains do not matter
        if self.training and domain_sizes is None:
            raise ValueError(f"{type(self).__name__} in training mode needs domain_sizes=[n1, n2, ...]")
        if not self.training and domain is None:
            if domain_sizes is None:
                raise ValueError(f"{type(self).__name__} in eval mode needs domain= (int or (B,) ids)")
            domain = torch.repeat_interleave(
                torch.arange(self.num_domains, device=x.device),
                torch.tensor(domain_sizes, device=x.device),
            )
        return domain_sizes, domain

    def forward(
        self,
        x: torch.Tensor,
        domain_sizes: Sequence[int] | None = None,
        domain: int | torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, input_size) -> (B, T, hidden_size), every sequence from a zero state.

        Args:
            domain_sizes: rows per domain in batch order (training; DDLSTM needs it).
            domain: evaluation: an int or (B,) ids naming whose population statistics to use;
                defaults to the blocks of `domain_sizes` when that is given.
            mask: (B, T) bool, True for real frames. Padded frames enter no batch statistic and
                carry the state through unchanged (their outputs repeat the last state).
        """
        domain_sizes, domain = self._check(x, domain_sizes, domain)
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask must have shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
            mask = mask.to(torch.bool)
        h = x.contiguous()
        for layer in self.layers:
            h = layer(h, domain_sizes=domain_sizes, domain=domain, mask=mask,
                      implementation=self.implementation)
        # The fused kernel hands back a transposed view of its time-major output (so that the
        # next layer reads it without a copy); users get an ordinary contiguous tensor.
        return h.contiguous()

    def step(
        self,
        x_t: torch.Tensor,
        state: StreamState | None = None,
        domain_sizes: Sequence[int] | None = None,
        domain: int | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, StreamState]:
        """Streaming: one frame per sequence, x_t (B, input_size) -> (B, hidden_size), new state.

        Feeding a sequence frame by frame from `state=None` gives the same outputs as `forward`
        on the whole sequence (per-timestep statistics are picked by the carried index).
        """
        domain_sizes, domain = self._check(x_t.unsqueeze(1), domain_sizes, domain)
        if state is None:
            zeros = x_t.new_zeros(x_t.shape[0], self.hidden_size)
            state = StreamState([zeros] * self.num_layers, [zeros] * self.num_layers, 0)
        h_in = x_t
        hs, cs = [], []
        for layer, h, c in zip(self.layers, state.h, state.c):
            h, c = layer.step(h_in, (h, c), state.t, domain_sizes=domain_sizes, domain=domain)
            hs.append(h)
            cs.append(c)
            h_in = h
        return h_in, StreamState(hs, cs, state.t + 1)

    # -- alphas -----------------------------------------------------------------------------------

    def alphas(self) -> torch.Tensor:
        """Cross-contamination parameters, (num_layers, d (d - 1)); empty for LSTM and BNLSTM."""
        values = [layer.alpha.detach() for layer in self.layers if layer.alpha is not None]
        if not values:
            return torch.empty(self.num_layers, 0)
        return torch.stack(values)

    @torch.no_grad()
    def constrain_alphas_(self) -> None:
        """Project every alpha onto [n_i / (n_i + n_k), 1] for the last training batch."""
        for layer in self.layers:
            if layer.alpha is not None:
                layer.norm_x.constrain_alpha_()


@register_model("lstm")
class LSTM(RecurrentStack):
    """Stacked standard LSTM (no normalisation)."""

    normalisation = "none"


@register_model("bnlstm")
class BNLSTM(RecurrentStack):
    """Stacked batch-normalised LSTM (Cooijmans et al. 2017), per-timestep statistics."""

    normalisation = "bn"


@register_model("ddlstm")
class DDLSTM(RecurrentStack):
    """Stacked dual-domain LSTM (Perrett & Damen 2019): DDBN on both gate inputs, BN on c_t."""

    normalisation = "ddbn"


def project_alphas_after_step(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Keep every alpha of `model` in range after each `optimizer.step()` (docs/method.md §4).

    Returns the hook handle (``handle.remove()`` detaches it).
    """

    def hook(_optimizer, _args, _kwargs):
        for module in model.modules():
            if isinstance(module, RecurrentStack):
                module.constrain_alphas_()

    return optimizer.register_step_post_hook(hook)
