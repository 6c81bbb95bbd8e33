"""Dual-domain batch normalisation for convolutional feature maps, and a CNN's BN layers made dual-domain.

The paper's future work D ("frame-based domain adaptation in the feature extractor as well as the
LSTM") read as AutoDIAL (Carlucci et al., "AutoDIAL: Automatic DomaIn Alignment Layers", ICCV 2017,
the paper's reference [2]): every batch normalisation of the frame CNN becomes a `DDBN2d`, the
package's `DDBN` (eq. 5-9, docs/method.md §4) over (N, C, H, W) maps instead of (N, F) rows at a
timestep. A batch holds domain 1's frames in rows 0..n1-1, then domain 2's.

Statistics over (rows, positions). Row j contributes to domain i with the weight tau_i(j) of eq. 5-6
(a function of the row and the batch's N rows, never of the positions), and every one of its H x W
positions with that same weight:

    E_i[x]_c   = sum_j tau_i(j) sum_hw x_jchw / (H W sum_j tau_i(j))
    Var_i[x]_c = sum_j tau_i(j) sum_hw (x_jchw - E_i[x]_c)^2 / (H W sum_j tau_i(j))

which is the package's `DDBN` applied to the N H W "rows" of the flattened maps with each row's
weight repeated over its positions (tests/test_ddbn2d.py checks forward and gradients against it),
and with H = W = 1 the package's `DDBN` on (N, C) exactly. One timestep: `max_timesteps` 1.

Per layer one pair (alpha_1, alpha_2), learned, projected onto [n_i / N, 1] after each optimiser
step (`constrain_alphas_`). Each domain keeps its own population statistics (running averages of
its weighted batch statistics, biased variance as eq. 9); in evaluation a domain flag names the
statistics that normalise every row. The affine part is the CNN's own: gamma and beta learned,
from 1 and 0 (or from the BN layer a converted network had). With one domain in a batch (n2 = 0) a
DDBN2d is `nn.BatchNorm2d` in training exactly; with every alpha at 1 it is whole-batch batch
normalisation up to the soft tanh edge of eq. 5-6, which weighs the ~3 rows beside each threshold
by 0.88-0.98 (and domain 2's first row by 0.5) instead of 1.

The domain layout reaches the layers deep in a network through `domains(model, sizes=...)` (training)
or `domains(model, domain=...)` (evaluation), a context that sets it on every DDBN2d for one forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .contribution import MIN_TOTAL_WEIGHT, check_domain_sizes, row_domains
from .ddbn import DDBN, update_running_statistics


class DDBN2d(DDBN):
    """DDBN over (N, C, H, W) maps at a single timestep, with a learned affine part (a CNN's BN).

    ``with domains(net, sizes=[n1, n2]): y = net(x)`` in training; ``with domains(net, domain=1)``
    in evaluation (an int, or (N,) per-row ids). Called directly: ``bn(x, domain_sizes=[n1, n2])``,
    ``bn(x, domain=1)``.
    """

    def __init__(
        self,
        num_features: int,
        num_domains: int = 2,
        alpha_init: float = 0.75,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__(
            num_features,
            num_domains=num_domains,
            alpha_init=alpha_init,
            max_timesteps=1,
            eps=eps,
            momentum=momentum,
            gamma_init=1.0,
            beta_init=0.0,
            learnable_affine=True,
        )
        self.domain_sizes: Sequence[int] | None = None  # set by `domains()` for one forward
        self.domain: int | torch.Tensor | None = None
        self._layout: tuple | None = None  # (domain sizes, row ids) of the last training batch

    def forward(self, x: torch.Tensor, domain_sizes=None, domain=None) -> torch.Tensor:  # (N, C, H, W)
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"expected maps of shape (N, {self.num_features}, H, W), got {tuple(x.shape)}")
        domain_sizes = self.domain_sizes if domain_sizes is None else domain_sizes
        domain = self.domain if domain is None else domain
        n, _, height, width = x.shape
        if not self.training:
            scale, shift = self.population_affine(0, self.domain_ids(domain, n, x.device))
            return x * scale[..., None, None] + shift[..., None, None]  # (C,) or (N, C) per-row
        if domain_sizes is None:
            if self.num_domains > 1:
                raise ValueError("a DDBN2d in training mode needs domain sizes: run the network inside "
                                 "`domains(net, sizes=[n1, n2])`")
            domain_sizes = [n]
        sizes = check_domain_sizes(domain_sizes, self.num_domains, n)
        if self._layout is None or self._layout[0] != tuple(sizes):  # the bounds and row ids of this layout
            self.record_alpha_bounds(sizes)
            present = [i for i, size in enumerate(sizes) if size > 0]
            self._layout = (tuple(sizes), row_domains(sizes, present, x.device))
        rows = self._layout[1].to(x.device)
        w, present = self._weights(sizes, n)  # (d, N): a row's weight, the same at all its positions
        w = w.to(x.dtype)
        total = (w.sum(1) * (height * width)).clamp_min(MIN_TOTAL_WEIGHT)[:, None]  # (d, 1)
        # One pass for both moments: the variance is shift-invariant, so the maps are centred on the batch's
        # mean (a constant: no gradient through it) and E[(x - c)^2] - E[x - c]^2 loses no precision to a
        # large mean; the result is the centred two-pass variance of eq. 9.
        centre = x.detach().mean((0, 2, 3))[None, :, None, None]
        shifted = x - centre
        mean = (w @ shifted.sum((2, 3))) / total  # (d, C), relative to the centre
        var = ((w @ shifted.square().sum((2, 3))) / total - mean.square()).clamp_min(0)  # (d, C)
        scale = torch.rsqrt(var[rows] + self.eps) * self.gamma  # (N, C)
        shift = self.beta - mean[rows] * scale
        with torch.no_grad():
            mean = mean + centre[0, :, 0, 0]
            if len(present) == self.num_domains:  # every domain's statistics at once
                self.running_mean[:, 0].lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var[:, 0].lerp_(var.to(self.running_var.dtype), self.momentum)
            else:
                for p, dom in enumerate(present):
                    update_running_statistics(self, dom, 0, mean[p], var[p])
        return shifted * scale[:, :, None, None] + shift[:, :, None, None]

    def _weights(self, sizes: list[int], n: int) -> tuple[torch.Tensor, list[int]]:
        """`contribution_weights(sizes)`; with two domains both present, eq. 5-6 written out directly
        (the same values in a few operations: a CNN has dozens of these layers)."""
        if self.num_domains != 2 or min(sizes) == 0:
            return self.contribution_weights(sizes)
        alpha = self.effective_alpha()
        j = torch.arange(n, dtype=alpha.dtype, device=alpha.device)
        first = (1 - torch.tanh(j - alpha[0] * n)) / 2
        second = (1 + torch.tanh(j - (1 - alpha[1]) * n)) / 2
        return torch.stack([first, second]), [0, 1]

    def alpha_values(self) -> list[float]:
        """The layer's alphas as used (within their bounds)."""
        return [] if self.alpha is None else self.effective_alpha().detach().tolist()

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d, num_domains: int = 2, alpha_init: float = 0.75) -> DDBN2d:
        """A DDBN2d starting from a BN layer: its gamma, beta, eps and momentum, its population
        statistics for every domain (so that initial weights, e.g. HMDB51's, keep what they learned)."""
        layer = cls(bn.num_features, num_domains, alpha_init, bn.eps, bn.momentum if bn.momentum is not None else 0.1)
        with torch.no_grad():
            if bn.affine:
                layer.gamma.copy_(bn.weight)
                layer.beta.copy_(bn.bias)
            if bn.track_running_stats:
                layer.running_mean.copy_(bn.running_mean.expand_as(layer.running_mean[:, 0]).unsqueeze(1))
                layer.running_var.copy_(bn.running_var.expand_as(layer.running_var[:, 0]).unsqueeze(1))
        return layer.to(bn.weight.device if bn.affine else "cpu")


def dual_domain(module: nn.Module, num_domains: int = 2, alpha_init: float = 0.75) -> nn.Module:
    """Every `nn.BatchNorm2d` of `module` replaced by a `DDBN2d` made from it (in place; returns `module`)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, DDBN2d.from_batchnorm(child, num_domains, alpha_init))
        else:
            dual_domain(child, num_domains, alpha_init)
    return module


def ddbn_layers(module: nn.Module) -> list[DDBN2d]:
    """The DDBN2d layers of `module` in the order a forward pass meets them (registration order)."""
    return [m for m in module.modules() if isinstance(m, DDBN2d)]


@contextmanager
def domains(module: nn.Module, sizes: Sequence[int] | None = None, domain=None) -> Iterator[None]:
    """The batch's domain layout on every DDBN2d of `module` for the forward passes inside the block:
    `sizes` (rows per domain, in batch order) in training, `domain` (an int or (N,) ids) in evaluation."""
    layers = ddbn_layers(module)
    for layer in layers:
        layer.domain_sizes, layer.domain = sizes, domain
    try:
        yield
    finally:
        for layer in layers:
            layer.domain_sizes, layer.domain = None, None


@torch.no_grad()
def constrain_alphas_(module: nn.Module) -> None:
    """Every DDBN2d's alphas back onto [n_i / N, 1] (after each optimiser step, as the LSTM's)."""
    for layer in ddbn_layers(module):
        layer.constrain_alpha_()
