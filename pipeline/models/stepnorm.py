"""Per-timestep weighted batch normalisation, forward and backward, for the fused kernel.

The maths of docs/method.md §4 (eq. 8-9) for one timestep, written for speed: a normaliser serves k "sides"
that share one gradient (the input and hidden sides of a layer both add into the gate
pre-activations, so both get the same dz; the cell state is a normaliser with k = 1). Each step's
values sit in one row-major buffer [a | a^2] of width 2 W (W = k F), so the statistics of all
sides come from one product with the contribution weights; rows of domain i are normalised with
domain i's statistics, their gradients flow back through the weighted means and variances, and
with the weights' derivatives (extra rows of the same product) they give alpha's gradient
(`alpha_gradient`).

Used by both kernels (`fused.FusedRecurrentLayer`, `native.NativeRecurrentLayer`); the readable
version of the same maths is `ddbn.DDBN`.
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
    weights: torch.Tensor  # (d, N) contribution weights, before the padding mask
    # Alpha gradient: derivative of the weights of domain owners[k] with respect to alpha
    # alpha_indices[k], one row each (e, N); None when no alpha takes part (BN, one domain).
    directions: torch.Tensor | None = None
    owners: list[int] = field(default_factory=list)
    alpha_indices: list[int] = field(default_factory=list)

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
    """Contribution weights of one normaliser, with the padding mask applied per timestep.

    With `directions` (e, N), the derivatives of the weights of domain `owners[k]` with respect
    to the k-th alpha, each step's product matrix gets e extra rows (direction / total of its
    domain), so the forward's moments product also yields what the alpha gradient needs.
    """

    def __init__(self, raw, mask_f, directions=None, owners=()):
        # raw (d, N); mask_f (T, N) float or None
        self.mask_f = mask_f
        self.d = raw.shape[0]
        masked = raw if mask_f is None else raw.unsqueeze(0) * mask_f.unsqueeze(1)  # (T, d, N)
        total = masked.sum(-1, keepdim=True).clamp_min(MIN_TOTAL_WEIGHT)  # (d, 1) or (T, d, 1)
        normalised = masked / total
        self.direction_sums = None
        if directions is not None:
            owners = list(owners)
            d_masked = directions if mask_f is None else directions.unsqueeze(0) * mask_f.unsqueeze(1)
            d_scaled = d_masked / total[..., owners, :]  # (e, N) or (T, e, N)
            self.direction_sums = d_scaled.sum(-1)  # (e,) or (T, e)
            normalised = torch.cat([normalised, d_scaled], -2)
        if mask_f is None:
            self._same = self._step(normalised)
        else:
            self._steps = [self._step(w) for w in normalised.unbind(0)]

    def _step(self, product):
        # (product rows (d + e, N), normalised weights (d, N), per-domain columns (N, 1) for the
        # broadcast spreads of the backward)
        weights = product[: self.d]
        return product, weights, weights.t().unsqueeze(-1).unbind(1)

    def at(self, t: int):
        """(product matrix, normalised weights (d, N), per-domain columns) at timestep t."""
        return self._same if self.mask_f is None else self._steps[t]

    def products(self) -> torch.Tensor:
        """Every step's product matrix as one (T, d + e, N) tensor ((1, d + e, N) without a mask)."""
        if self.mask_f is None:
            return self._same[0].unsqueeze(0).contiguous()
        return torch.stack([step[0] for step in self._steps])


class StepStats:
    """Statistics of one normaliser for all T steps: moments (T, d + e, 2W) = [E a | E a^2] (the
    e extra rows from the alpha directions), var and rstd (T, d, W)."""

    def __init__(self, T, d, width, like, extra_rows=0):
        self.moments = like.new_empty(T, d + extra_rows, 2 * width)
        self.var = like.new_empty(T, d, width)
        self.rstd = like.new_empty(T, d, width)
        # per step: (moments, mean, E a^2, var, rstd) views, made once instead of at every step
        self.steps = [(m, m[:d, :width], m[:d, width:], v, r) for m, v, r in
                      zip(self.moments.unbind(0), self.var.unbind(0), self.rstd.unbind(0))]


def step_norm_forward(buf, weights, gamma, beta, eps, stats_t):
    """Statistics of a = buf[:, :W] from buf = [a | a^2] (N, 2W) into the step's `stats_t`;
    returns (scale, shift) (d, W): a row of domain i normalises to a * scale_i + shift_i."""
    moments, mean, ex2, var, rstd = stats_t
    torch.mm(weights, buf, out=moments)
    torch.addcmul(ex2, mean, mean, value=-1, out=var).clamp_min_(0)
    torch.add(var, eps, out=rstd).rsqrt_()
    scale = rstd * gamma
    return scale, torch.addcmul(beta, mean, scale, value=-1)


def step_norm_backward(dy, sum_dy, buf, stats_t, gamma, weights_t, indicator, blocks, out,
                       scratch, coef, grad_mean_out, equal_blocks=False):
    """Backward of `step_norm_forward` for the gradient dy (N, F) of every side.

    sum_dy = indicator @ dy; `out` (N, W) receives the gradients of all sides; `scratch` holds
    an (N, W) and an (N, 2W) buffer (fresh tensors every step would cost page faults). `coef`
    (d, 2W) receives [d L / d mean - 2 mean d L / d var | d L / d var] and `grad_mean_out` (d, W)
    d L / d mean, per domain: with the statistics they give the alpha gradient after the loop
    (`alpha_gradient`). Returns (da, (sum dy x_hat, sum dy) per domain, each (d, W)) for the
    affine gradients.
    """
    N, F = dy.shape
    _, mean, _, _, rstd = stats_t
    _, weights, cols = weights_t
    W = mean.shape[1]
    k = W // F
    a = buf[:, :W]
    prod = torch.mul(a.view(N, k, F), dy.unsqueeze(1), out=scratch[0].view(N, k, F))
    sum_dya = indicator @ prod.view(N, W)
    if k > 1:
        sum_dy = sum_dy.repeat(1, k)
    rg = rstd * gamma
    grad_mean = torch.mul(rg, sum_dy, out=grad_mean_out).neg_()
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
    return da, (dy_xhat, sum_dy)


def alpha_gradient(moments, var, direction_sums, coef, grad_mean, owners, d):
    """Gradient with respect to the alphas whose weight derivatives the moments' extra rows carry.

    With S_i the total weight of domain i, d mean_i / d w_ij = (a_j - mean_i) / S_i and
    d var_i / d w_ij = ((a_j - mean_i)^2 - var_i) / S_i, so for alpha k of domain i = owners[k]
    and its weight derivative J_k, summed over steps t:
        d L / d alpha_k = sum_t coef_t,i . M_t,k - const_t,i s_t,k
    with M_t,k = (J_k / S_t,i) @ [a | a^2] (the extra rows of the forward's moments product,
    `moments` (T, d + e, 2W)), s_t,k = sum_j J_kj / S_t,i (`direction_sums`, (e,) or per step
    (T, e)) and const_i = sum(grad_mean_i mean_i + grad_var_i (var_i - mean_i^2)). `var` (T, d, W);
    coef (T, d, 2W) and grad_mean (T, d, W) are the backward's per-step values.
    """
    W = var.shape[-1]
    mean = moments[:, :d, :W]
    grad_var = coef[..., W:]
    const = torch.addcmul(grad_mean * mean, grad_var, var - mean * mean).sum(-1)  # (T, d)
    # one alpha at a time (there are d (d - 1)): indexing by a list would copy it to the device, a
    # host synchronisation a captured CUDA graph cannot hold
    along = torch.stack([(coef[:, owner] * moments[:, d + k]).sum() for k, owner in enumerate(owners)])
    owned = torch.stack([const[:, owner] for owner in owners], 1)  # (T, e)
    const_part = (owned * direction_sums).sum(0) if direction_sums.dim() == 2 else owned.sum(0) * direction_sums
    return along - const_part


def real_mean(x_tm: torch.Tensor, mask_f: torch.Tensor | None) -> torch.Tensor:
    """Per-feature mean of x (T, N, I) over its real (unpadded) frames, shape (I,): the kernels centre
    their input by it (batch normalisation ignores the shift; E[a^2] - E[a]^2 needs centred values)."""
    if mask_f is None:
        return x_tm.mean((0, 1))
    weights = mask_f.unsqueeze(-1)
    return (x_tm * weights).sum((0, 1)) / weights.sum().clamp_min(1)
