"""Per-timestep batch normalisation for recurrent layers: dual-domain (DDBN) and plain (BN).

* `BN` is the recurrent batch normalisation of Cooijmans et al., "Recurrent Batch Normalization"
  (ICLR 2017): statistics are kept separately for every timestep, and beyond the longest
  training sequence the last timestep's population statistics are reused.
* `DDBN` is the dual-domain batch normalisation of Perrett & Damen (CVPR 2019, eq. 5-9): every
  domain in the batch gets its own soft-weighted statistics, the weights coming from the
  learnable cross-contamination parameters alpha (see `contribution.py`). With one domain it is
  `BN`; it also takes d > 2 domains.

The affine part is beta + gamma * x_hat with gamma = 0.1 and beta = 0, fixed by default as in the
paper; `learnable_affine=True` makes both parameters, starting from those values.

Batch variance is the weighted (biased) variance of docs/method.md §3 (eq. 9). Population statistics are
exponential moving averages (`momentum`, 0.1 by default) of the batch mean and that variance, per
domain and timestep; a domain with no unpadded row at a timestep leaves its statistics alone.

This module is the readable reference implementation: the fast sequence kernel in `fused.py` is
tested against it, and `pipeline.models` layers use it directly for streaming (one frame at a
time) and whenever `implementation="reference"`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .contribution import (
    MIN_TOTAL_WEIGHT,
    alpha_lower_bounds,
    check_domain_sizes,
    contribution_weights,
    num_alphas,
    row_domains,
)


class DDBN(nn.Module):
    """Dual-domain batch normalisation with statistics per timestep and per domain.

    Training: ``y = bn(x, t, domain_sizes=[n1, n2])`` with x of shape (N, F) holding domain 0 in
    rows 0..n1-1, then domain 1, and so on. Evaluation: ``bn.eval(); y = bn(x, t, domain=1)``
    normalises every row with domain 1's population statistics (``domain`` may also be a (N,)
    tensor of per-row domain ids).
    """

    def __init__(
        self,
        num_features: int,
        num_domains: int = 2,
        alpha_init: float = 0.75,
        max_timesteps: int = 200,
        eps: float = 1e-5,
        momentum: float = 0.1,
        gamma_init: float = 0.1,
        beta_init: float = 0.0,
        learnable_affine: bool = False,
    ):
        super().__init__()
        if num_domains < 1:
            raise ValueError(f"num_domains must be >= 1, got {num_domains}")
        if max_timesteps < 1:
            raise ValueError(f"max_timesteps must be >= 1, got {max_timesteps}")
        if not 0.0 <= alpha_init <= 1.0:
            raise ValueError(f"alpha_init must lie in [0, 1], got {alpha_init}")
        self.num_features = num_features
        self.num_domains = num_domains
        self.max_timesteps = max_timesteps
        self.eps = eps
        self.momentum = momentum
        self.learnable_affine = learnable_affine

        if num_domains > 1:
            self.alpha = nn.Parameter(torch.full((num_alphas(num_domains),), float(alpha_init)))
        else:
            self.register_parameter("alpha", None)
        # Lower bound of every alpha for the batch composition seen last in training
        # (n_i / (n_i + n_k)); starts at the balanced batch's bound.
        self.register_buffer("alpha_lower", torch.full((num_alphas(num_domains),), 0.5))

        gamma = torch.full((num_features,), float(gamma_init))
        beta = torch.full((num_features,), float(beta_init))
        if learnable_affine:
            self.gamma, self.beta = nn.Parameter(gamma), nn.Parameter(beta)
        else:
            self.register_buffer("gamma", gamma)
            self.register_buffer("beta", beta)
        self.register_buffer("running_mean", torch.zeros(num_domains, max_timesteps, num_features))
        self.register_buffer("running_var", torch.ones(num_domains, max_timesteps, num_features))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, num_domains={self.num_domains}, "
            f"max_timesteps={self.max_timesteps}, learnable_affine={self.learnable_affine}"
        )

    # -- contribution weights ------------------------------------------------------------------

    def effective_alpha(self) -> torch.Tensor | None:
        """alpha clamped into [lower bound, 1]; the optimiser-side projection is
        `constrain_alpha_`, this clamp only guards a forward pass run without it.

        The gradient passes whole where alpha sits on a bound (alpha_init 1.0, or the projection
        just put it there): it flows wherever lower <= alpha <= 1, where torch's maximum / minimum
        (and clamp with tensor bounds) split it between two tied arguments and halve the step.
        """
        if self.alpha is None:
            return None
        # A copy: the next training batch updates the bounds in place while this forward's
        # graph may still need them (two forwards before a backward, e.g. gradient accumulation).
        lower = self.alpha_lower.to(self.alpha.dtype, copy=True)
        inside = (self.alpha >= lower) & (self.alpha <= 1)
        return torch.where(inside, self.alpha, torch.clamp(self.alpha.detach(), lower, torch.ones_like(lower)))

    @torch.no_grad()
    def constrain_alpha_(self) -> None:
        """Project alpha in place onto [lower bound, 1] (call after each optimiser step)."""
        if self.alpha is not None:
            lower = self.alpha_lower.to(self.alpha.dtype)
            self.alpha.copy_(torch.minimum(torch.maximum(self.alpha, lower), torch.ones_like(lower)))

    @torch.no_grad()
    def record_alpha_bounds(self, domain_sizes: Sequence[int]) -> None:
        """Remember the lower bound of every alpha for a training batch of this composition (what
        `constrain_alpha_` and `effective_alpha` hold alpha to); pairs absent from it keep theirs."""
        if self.alpha is not None:
            # scalar writes, no tensor copied from the host: the training step stays capturable
            for index, bound in enumerate(alpha_lower_bounds(domain_sizes).tolist()):
                if bound > 0:
                    self.alpha_lower[index] = bound

    def contribution_weights(
        self, domain_sizes: Sequence[int]
    ) -> tuple[torch.Tensor, list[int]]:
        """Weights (len(present), N) of every row in each present domain's statistics."""
        sizes = check_domain_sizes(domain_sizes, self.num_domains, sum(int(n) for n in domain_sizes))
        if self.alpha is None:
            return self.running_mean.new_ones(1, sum(sizes)), [0]
        return contribution_weights(self.effective_alpha(), sizes)

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        t: int,
        domain_sizes: Sequence[int] | None = None,
        domain: int | torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        weights: tuple[torch.Tensor, list[int]] | None = None,
    ) -> torch.Tensor:
        """Normalise x (N, F) at timestep t.

        Args:
            domain_sizes: training only; rows per domain, in batch order. Defaults to all rows
                in domain 0 for a one-domain layer.
            domain: evaluation only; an int or (N,) ids naming whose population statistics
                normalise each row.
            mask: (N,) bool, False for padded rows: they enter no statistic (their outputs are
                computed but meaningless).
            weights: `contribution_weights(domain_sizes)`, to reuse over the timesteps of one
                sequence instead of recomputing it at every step.
        """
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected x of shape (N, {self.num_features}), got {tuple(x.shape)}")
        slot = min(int(t), self.max_timesteps - 1)
        if not self.training:
            scale, shift = self.population_affine(slot, self.domain_ids(domain, x.shape[0], x.device))
            return x * scale + shift
        if domain_sizes is None:
            if self.num_domains > 1:
                raise ValueError("a DDBN in training mode needs domain_sizes=[n1, n2, ...]")
            domain_sizes = [x.shape[0]]
        sizes = check_domain_sizes(domain_sizes, self.num_domains, x.shape[0])
        if weights is None:
            self.record_alpha_bounds(sizes)
        w, present = weights if weights is not None else self.contribution_weights(sizes)
        w = w.to(x.dtype)
        if mask is not None:
            w = w * mask.to(x.dtype)
        total = w.sum(1, keepdim=True).clamp_min(MIN_TOTAL_WEIGHT)
        mean = (w @ x) / total  # (d, F)
        centred = x.unsqueeze(0) - mean.unsqueeze(1)  # (d, N, F)
        var = torch.einsum("dn,dnf->df", w, centred * centred) / total
        rows = row_domains(sizes, present, x.device)
        x_hat = (x - mean[rows]) * torch.rsqrt(var[rows] + self.eps)
        self._update_running(slot, present, sizes, mean, var, mask)
        return x_hat * self.gamma + self.beta

    # -- population statistics -------------------------------------------------------------------

    def domain_ids(self, domain, n_rows: int, device) -> torch.Tensor | int:
        """Validated evaluation domain: an int, or (n_rows,) long ids for per-row domains."""
        if domain is None:
            if self.num_domains > 1:
                raise ValueError(
                    "a DDBN in eval mode needs domain= (int or per-row ids) to pick the "
                    "population statistics"
                )
            return 0
        if isinstance(domain, torch.Tensor) and domain.dim() > 0:
            if domain.shape != (n_rows,):
                raise ValueError(f"per-row domain ids must have shape ({n_rows},)")
            if bool(((domain < 0) | (domain >= self.num_domains)).any()):
                raise ValueError(f"domain ids must lie in [0, {self.num_domains})")
            return domain.to(device=device, dtype=torch.long)
        domain = int(domain)
        if not 0 <= domain < self.num_domains:
            raise ValueError(f"domain must lie in [0, {self.num_domains}), got {domain}")
        return domain

    def population_affine(self, slot: int, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with which evaluation normalises: x * scale + shift at timestep `slot`,
        for one domain id (shapes (F,)) or per-row ids (shapes (N, F))."""
        mean = self.running_mean[rows, slot]
        scale = self.gamma * torch.rsqrt(self.running_var[rows, slot] + self.eps)
        return scale, self.beta - mean * scale

    @torch.no_grad()
    def _update_running(self, slot, present, sizes, mean, var, mask) -> None:
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for p, dom in enumerate(present):
            if mask is not None and not bool(mask[starts[dom]: starts[dom] + sizes[dom]].any()):
                continue  # every row of this domain is padding at this timestep
            update_running_statistics(self, dom, slot, mean[p], var[p])


@torch.no_grad()
def update_running_statistics(bn: DDBN, dom, slot, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Exponential moving average of one domain's statistics at one timestep slot."""
    m = bn.momentum
    bn.running_mean[dom, slot].mul_(1 - m).add_(mean.detach().to(bn.running_mean.dtype), alpha=m)
    bn.running_var[dom, slot].mul_(1 - m).add_(var.detach().to(bn.running_var.dtype), alpha=m)


class BN(DDBN):
    """Per-timestep batch normalisation (Cooijmans et al. 2017): DDBN with a single domain."""

    def __init__(
        self,
        num_features: int,
        max_timesteps: int = 200,
        eps: float = 1e-5,
        momentum: float = 0.1,
        gamma_init: float = 0.1,
        beta_init: float = 0.0,
        learnable_affine: bool = False,
    ):
        super().__init__(
            num_features,
            num_domains=1,
            max_timesteps=max_timesteps,
            eps=eps,
            momentum=momentum,
            gamma_init=gamma_init,
            beta_init=beta_init,
            learnable_affine=learnable_affine,
        )

    def forward(self, x, t, domain_sizes=None, domain=None, mask=None, weights=None):
        # One population whatever the rows' domains: BN on the cell state of a DDLSTM
        # normalises the whole mixed batch (docs/method.md §3).
        n = x.shape[0]
        return super().forward(x, t, domain_sizes=[n], domain=0, mask=mask, weights=weights)


@torch.no_grad()
def update_running_sequence(
    bn: DDBN,
    present: Sequence[int],
    mean: torch.Tensor,
    var: torch.Tensor,
    has_rows: torch.Tensor | None = None,
) -> None:
    """Running-average update from a whole sequence's batch statistics at once.

    Args:
        present: the global domain id of each row of the statistics.
        mean, var: (T, len(present), F) batch statistics of timesteps 0..T-1.
        has_rows: (T, len(present)) bool, False where a domain had only padding at a timestep
            (no update there); None means every domain had rows at every timestep.
    """
    steps = mean.shape[0]
    direct = min(steps, bn.max_timesteps)
    m = bn.momentum
    for p, dom in enumerate(present):
        upd = m if has_rows is None else m * has_rows[:direct, p, None].to(mean.dtype)
        for stat, running in ((mean, bn.running_mean), (var, bn.running_var)):
            old = running[dom, :direct]
            old += (stat[:direct, p].to(old.dtype) - old) * upd
        if steps > direct:  # timesteps past the table share its last slot, as in evaluation
            _update_last_slot(bn, dom, mean[direct:, p], var[direct:, p],
                              None if has_rows is None else has_rows[direct:, p])


@torch.no_grad()
def _update_last_slot(bn: DDBN, dom, mean: torch.Tensor, var: torch.Tensor,
                      has_rows: torch.Tensor | None) -> None:
    """The moving averages of the last slot after k updates in timestep order, at once: with rates r_i (the
    momentum, or 0 where a timestep had no real row), old prod(1 - r_i) + sum_i stat_i r_i prod_(j > i)
    (1 - r_j).
    Tensor arithmetic only: whether a timestep had rows is never read on the host (a look-ahead window is
    longer than the table, and its training step must stay capturable as a CUDA graph)."""
    rates = torch.full((mean.shape[0], 1), bn.momentum, dtype=mean.dtype, device=mean.device)
    if has_rows is not None:
        rates = rates * has_rows.to(mean.dtype).unsqueeze(1)
    keep = 1 - rates  # (k, 1)
    # prod_(j > i) (1 - r_j): reversed cumulative products, shifted by one
    after = torch.cat([keep.flip(0).cumprod(0).flip(0)[1:], keep.new_ones(1, 1)])
    for stat, running in ((mean, bn.running_mean), (var, bn.running_var)):
        slot = running[dom, bn.max_timesteps - 1]
        new = slot * keep.prod() + (stat.to(slot.dtype) * (rates * after).to(slot.dtype)).sum(0)
        slot.copy_(new)
