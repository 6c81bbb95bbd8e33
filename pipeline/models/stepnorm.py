"""Per-timestep weighted batch normalisation, forward and backward, for the fused kernel.

The maths of SPEC.md eq. 8-9 for one timestep, written for speed: a normaliser serves k "sides"
that share one gradient (the input and hidden sides of a layer both add into the gate
pre-activations, so both get the same dz; the cell state is a normaliser with k = 1). Each step's
values sit in one row-major buffer [a | a^2] of width 2 W (W = k F), so the statistics of all
sides come from one product with the contribution weights; rows of domain i are normalised with
domain i's statistics, their gradients flow back through the weighted means and variances, and
the gradient with respect to the weights is what reaches alpha.

Used by `fused.FusedRecurrentLayer`; the readable version of the same maths is `ddbn.DDBN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .contribution import MIN_TOTAL_WEIGHT


@dataclass
class NormSpec:
    """The layer's normalisation for one call."""

    eps: float
    blocks: list[tuple[int, int]]  # (start, stop) rows of each present domain, in order
    # Filled by the training forward: batch statistics for the running-average update,
    # {"x" | "h" | "c": (mean, var)} each (T, d, F).
    stats: dict = field(default_factory=dict)

    def equal_blocks(self) -> bool:
        """True when every domain has the same number of rows (the paper's n1 = n2): then a
        per-domain value applies to all blocks at once through a (d, n, ...) view."""
        sizes = {stop - start for start, stop in self.blocks}
        return len(sizes) == 1

    def indicator(self, like: torch.Tensor) -> torch.Tensor:
        """(d, N) one-hot of the rows' domains."""
        n = self.blocks[-1][1]
        ind = like.new_zeros(len(self.blocks), n)
        for b, (start, stop) in enumerate(self.blocks):
            ind[b, start:stop] = 1
        return ind


class StepWeights:
    """Contribution weights of one normaliser, with the padding mask applied per timestep."""

    def __init__(self, raw: torch.Tensor, mask_f: torch.Tensor | None):
        # raw (d, N); mask_f (T, N) float or None
        self.raw = raw
        self.mask_f = mask_f
        if mask_f is None:
            total = raw.sum(1, keepdim=True).clamp_min(MIN_TOTAL_WEIGHT)  # (d, 1)
            self._same = self._step(raw / total, total)
        else:
            masked = raw.unsqueeze(0) * mask_f.unsqueeze(1)  # (T, d, N)
            total = masked.sum(2, keepdim=True).clamp_min(MIN_TOTAL_WEIGHT)  # (T, d, 1)
            self._steps = [self._step(w, s) for w, s in zip((masked / total).unbind(0), total.unbind(0))]

    @staticmethod
    def _step(normalised, total):
        # per-domain columns (N, 1) for the broadcast spreads of the backward
        return normalised, total, normalised.t().unsqueeze(-1).unbind(1)

    def at(self, t: int):
        """(normalised (d, N), total (d, 1), per-domain columns) at timestep t."""
        return self._same if self.mask_f is None else self._steps[t]


class StepStats:
    """Statistics of one normaliser for all T steps: moments (T, d, 2W) = [E a | E a^2], var and
    rstd (T, d, W)."""

    def __init__(self, T, d, width, like):
        self.moments = like.new_empty(T, d, 2 * width)
        self.var = like.new_empty(T, d, width)
        self.rstd = like.new_empty(T, d, width)
        # per step: (moments, mean, var, rstd) views, made once instead of at every step
        self.steps = [(m, m[:, :width], v, r) for m, v, r in
                      zip(self.moments.unbind(0), self.var.unbind(0), self.rstd.unbind(0))]


def step_norm_forward(buf, weights, gamma, beta, eps, stats_t):
    """Statistics of a = buf[:, :W] from buf = [a | a^2] (N, 2W) into the step's `stats_t`;
    returns (scale, shift) (d, W): a row of domain i normalises to a * scale_i + shift_i."""
    moments, mean, var, rstd = stats_t
    W = mean.shape[1]
    torch.mm(weights, buf, out=moments)
    torch.addcmul(moments[:, W:], mean, mean, value=-1, out=var).clamp_min_(0)
    torch.add(var, eps, out=rstd).rsqrt_()
    scale = rstd * gamma
    return scale, torch.addcmul(beta, mean, scale, value=-1)


def step_norm_backward(dy, sum_dy, buf, stats_t, gamma, weights_t, indicator, blocks, mask_t,
                        d_weights, out, scratch, coef, equal_blocks=False):
    """Backward of `step_norm_forward` for the gradient dy (N, F) of every side.

    sum_dy = indicator @ dy; `out` (N, W) receives the gradients of all sides; `scratch` holds
    an (N, W) and an (N, 2W) buffer and `coef` is (d, 2W) (fresh tensors every step would cost
    page faults).
    With `d_weights` (d, N) the gradient with respect to the contribution weights is added to
    it. Returns (da, (sum dy x_hat, sum dy) per domain, each (d, W)) for the affine gradients.
    """
    N, F = dy.shape
    _, mean, var, rstd = stats_t
    weights, total, cols = weights_t
    W = mean.shape[1]
    k = W // F
    a = buf[:, :W]
    prod = torch.mul(a.view(N, k, F), dy.unsqueeze(1), out=scratch[0].view(N, k, F))
    sum_dya = indicator @ prod.view(N, W)
    if k > 1:
        sum_dy = sum_dy.repeat(1, k)
    rg = rstd * gamma
    grad_mean = (rg * sum_dy).neg_()
    dy_xhat = torch.addcmul(sum_dya, mean, sum_dy, value=-1).mul_(rstd)
    grad_var = torch.mul(dy_xhat, rstd, out=coef[:, W:]).mul_(rg).mul_(-0.5)
    coef_const = torch.addcmul(grad_mean, grad_var, mean, value=-2, out=coef[:, :W])
    if len(blocks) == 1:
        da = torch.addcmul(coef_const, a, grad_var, value=2, out=out).mul_(weights.t())
        da.view(N, k, F).addcmul_(dy.unsqueeze(1), rg.view(1, k, F))
    else:
        # da = w^T coef_const + 2 a (w^T grad_var) + dy rstd gamma, with the (N, d) x (d, W)
        # products written as d broadcast passes into row-major buffers: as matrix products
        # (K = d) they are slow on the CPU and come back column-major, which slows every later
        # elementwise op.
        spread = torch.mul(cols[0], coef[0], out=scratch[1])  # (N, 2W): [const | var] parts
        for i in range(1, len(blocks)):
            spread.addcmul_(cols[i], coef[i])
        da = torch.addcmul(spread[:, :W], a, spread[:, W:], value=2, out=out)
        if equal_blocks:
            d = len(blocks)
            da.view(d, N // d, k, F).addcmul_(dy.view(d, N // d, 1, F), rg.view(d, 1, k, F))
        else:
            for b, (start, stop) in enumerate(blocks):
                n = stop - start
                da[start:stop].view(n, k, F).addcmul_(dy[start:stop].unsqueeze(1), rg[b].view(k, F))
    if d_weights is not None:
        # d mean_i / d w_ij = (a_j - mean_i) / S_i and d var_i / d w_ij = ((a_j - mean_i)^2 - var_i) / S_i
        const = torch.addcmul(grad_mean * mean, grad_var, var - mean * mean).sum(1, keepdim=True)
        dw = torch.mm(coef, buf.t()).sub_(const).div_(total)
        d_weights += dw if mask_t is None else dw * mask_t
    return da, (dy_xhat, sum_dy)
