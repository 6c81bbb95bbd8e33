"""Fast whole-sequence kernel of one LSTM / BNLSTM / DDLSTM layer, with a hand-written backward.

Why it exists: an eager per-timestep cell under autograd costs hundreds of small ops per step and
several times the fused `nn.LSTM` (see benchmarks/README.md). This kernel computes the same
function as the reference cell (`layers.RecurrentLayer.step` with `ddbn.DDBN`) with far fewer,
larger ops:

* autograd sees one node per layer and sequence; the forward builds no graph and the backward is
  back-propagation through time written out by hand;
* the large matrix products (W_x x_t for all t, dx, dW_x, dW_h) are done once per sequence;
  only W_h h_{t-1}, the statistics and the cell stay in the time loop, where every per-step
  tensor is (N, 4H) and stays in cache (whole-sequence elementwise passes were measured to be
  memory-bound and slower on the 2-core machine);
* per-step values needed by the backward go into time-major workspaces allocated once per call,
  with `out=` writes, instead of hundreds of fresh allocations;
* a row's domain statistics are applied by broadcasting over its domain's contiguous block of
  rows, not by gathering per-row copies;
* tanh is 2 sigmoid(2 z) - 1 (several times faster in PyTorch's CPU kernels): the caller folds
  the factor 2 into the g-gate's parameters and the cell-state normaliser's affine;
* batch statistics are E[w a] and E[w a^2] (small products with the weights); the gradient of
  the gate pre-activations is shared by both normalisers of a step.

Notation: N rows (batch), T timesteps, H hidden units, G = 4 H gate pre-activations in the order
f, i, o, g; d domains present in the batch, each a contiguous block of rows; `weights` (d, N) are
the DDBN contributions tau before the padding mask. Without normalisation (plain LSTM) `spec` is
None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .workspace import POOL

# Guards the division by a domain's total weight when a timestep holds none of its rows.
_MIN_TOTAL_WEIGHT = 1e-12


@dataclass
class NormSpec:
    """The layer's normalisation for one call."""

    eps: float
    blocks: list[tuple[int, int]]  # (start, stop) rows of each present domain, in order
    # Filled by the training forward: batch statistics for the running-average update,
    # {"x" | "h" | "c": (mean, var)} each (T, d, F).
    stats: dict = field(default_factory=dict)

    def indicator(self, like: torch.Tensor) -> torch.Tensor:
        """(d, N) one-hot of the rows' domains."""
        n = self.blocks[-1][1]
        ind = like.new_zeros(len(self.blocks), n)
        for b, (start, stop) in enumerate(self.blocks):
            ind[b, start:stop] = 1
        return ind


class _Weights:
    """Contribution weights of one normaliser, with the padding mask applied per timestep."""

    def __init__(self, raw: torch.Tensor, mask_f: torch.Tensor | None):
        # raw (d, N); mask_f (T, N) float or None
        self.raw = raw
        self.mask_f = mask_f
        if mask_f is None:
            self.total = raw.sum(1, keepdim=True).clamp_min(_MIN_TOTAL_WEIGHT)  # (d, 1)
            self.normalised = raw / self.total
        else:
            masked = raw.unsqueeze(0) * mask_f.unsqueeze(1)  # (T, d, N)
            self.total = masked.sum(2, keepdim=True).clamp_min(_MIN_TOTAL_WEIGHT)  # (T, d, 1)
            self.normalised = masked / self.total

    def at(self, t: int):
        """(normalised (d, N), total (d, 1)) at timestep t."""
        if self.mask_f is None:
            return self.normalised, self.total
        return self.normalised[t], self.total[t]


# -- per-step normalisation -----------------------------------------------------------------------


class _StepStats:
    """Batch statistics of one normaliser for all T steps: mean, var, rstd, each (T, d, F)."""

    def __init__(self, T, d, F, like):
        self.mean = like.new_empty(T, d, F)
        self.var = like.new_empty(T, d, F)
        self.rstd = like.new_empty(T, d, F)


def _step_norm_forward(a, a2, weights, gamma, beta, eps, stats: _StepStats, t):
    """Statistics of a (N, F) (a2 = a * a) at step t, into `stats`; returns (scale, shift) (d, F)
    with which the normalised output is a * scale + beta-part shift, per domain."""
    mean = torch.mm(weights, a, out=stats.mean[t])
    var = torch.mm(weights, a2, out=stats.var[t])
    var.addcmul_(mean, mean, value=-1).clamp_min_(0)
    rstd = torch.add(var, eps, out=stats.rstd[t]).rsqrt_()
    scale = rstd * gamma
    return scale, torch.addcmul(beta, mean, scale, value=-1)


def _step_norm_backward(dy, sum_dy, a, a2, stats: _StepStats, t, gamma, weights, total,
                        indicator, blocks, mask_t, d_weights, out, scratch):
    """Backward of one per-step normalisation for the output gradient dy (N, F), into `out`.

    sum_dy = indicator @ dy (shared by the normalisers of one step). With `d_weights` (d, N)
    the gradient with respect to the contribution weights is added to it. `scratch` holds two
    (N, F) buffers: fresh ones every step would cost page faults. Returns
    (da, (sum dy x_hat, sum dy) per domain, each (d, F)).
    """
    mean, var, rstd = stats.mean[t], stats.var[t], stats.rstd[t]
    sum_dya = indicator @ torch.mul(dy, a, out=scratch[0])
    rg = rstd * gamma
    grad_mean = (rg * sum_dy).neg_()
    dy_xhat = torch.addcmul(sum_dya, mean, sum_dy, value=-1).mul_(rstd)
    grad_var = (dy_xhat * rstd).mul_(rg).mul_(-0.5)
    coef_const = torch.addcmul(grad_mean, grad_var, mean, value=-2)
    if len(blocks) == 1:
        da = torch.addcmul(coef_const, a, grad_var, value=2, out=out).mul_(weights.t())
        da.addcmul_(dy, rg)
    else:
        # da = w^T coef_const + 2 a (w^T grad_var) + dy rstd gamma, with the (N, d) x (d, F)
        # products written as d broadcast passes into row-major buffers: as matrix products
        # (K = d) they are slow on the CPU and come back column-major, which slows every later
        # elementwise op.
        cols = weights.t().unsqueeze(-1)  # (N, d, 1)
        spread_const = torch.mul(cols[:, 0], coef_const[0], out=out)
        spread_var = torch.mul(cols[:, 0], grad_var[0], out=scratch[1])
        for i in range(1, len(blocks)):
            spread_const.addcmul_(cols[:, i], coef_const[i])
            spread_var.addcmul_(cols[:, i], grad_var[i])
        da = spread_const.addcmul_(a, spread_var, value=2)
        for b, (start, stop) in enumerate(blocks):
            da[start:stop].addcmul_(dy[start:stop], rg[b])
    if d_weights is not None:
        # d mean_i / d w_ij = (a_j - mean_i) / S_i and d var_i / d w_ij = ((a_j - mean_i)^2 - var_i) / S_i
        const = torch.addcmul(grad_mean * mean, grad_var, var - mean * mean).sum(1, keepdim=True)
        dw = torch.mm(coef_const, a.t()).addmm_(grad_var, a2.t()).sub_(const).div_(total)
        d_weights += dw if mask_t is None else dw * mask_t
    return da, (dy_xhat, sum_dy)


# -- the layer ------------------------------------------------------------------------------------


class FusedRecurrentLayer(torch.autograd.Function):
    """One layer over a whole sequence from a zero state: x (N, T, I) -> (N, T, H).

    The output is a transposed view of a time-major (T, N, H) tensor, so that the next layer's
    kernel gets its time-major input without a copy. Inputs are the effective parameters (see
    `layers.RecurrentLayer._fused`): for normalising layers the g-gate's gamma, beta and bias and
    the cell normaliser's gamma and beta carry the factor 2 of tanh(z) = 2 sigmoid(2 z) - 1; for
    the plain LSTM the g-rows of both weight matrices and the bias do. `mask` (N, T) bool marks
    real frames.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, weights, gx, bx, gh, bh, gc, bc, mask, spec):
        N, T, I = x.shape
        H = w_hh.shape[1]
        G = 4 * H
        norm = spec is not None
        w_hh_t = w_hh.t()
        x_tm = x.transpose(0, 1).contiguous()  # (T, N, I); free when x came from this kernel
        mask_tm = None if mask is None else mask.t().contiguous()  # (T, N)
        mask_f = None if mask is None else mask_tm.to(x.dtype)

        out = x.new_empty(T, N, H)
        sig = POOL.take((T, N, G), x)  # gate activations sigmoid(z)
        g_all = POOL.take((T, N, H), x)  # tanh of the g-gate
        u_all = POOL.take((T, N, H), x)  # sigmoid(2 * normalised c): tanh(.) = 2 u - 1
        c_all = POOL.take((T + 1, N, H), x)  # c_all[0] is the zero state
        c_all[0].zero_()
        h = x.new_zeros(N, H)
        ax = POOL.take((T, N, G), x)
        torch.mm(x_tm.view(T * N, I), w_ih.t(), out=ax.view(T * N, G))
        ax2 = ah_all = ah2_all = c2_all = None
        if norm:
            blocks = spec.blocks
            d = len(blocks)
            w_x = _Weights(weights, mask_f)
            w_c = _Weights(x.new_ones(1, N), mask_f)
            ax2 = torch.mul(ax, ax, out=POOL.take((T, N, G), x))
            ah_all = POOL.take((T, N, G), x)
            ah2_all = POOL.take((T, N, G), x)
            c2_all = POOL.take((T, N, H), x)
            x_stats, h_stats, c_stats = _StepStats(T, d, G, x), _StepStats(T, d, G, x), _StepStats(T, 1, H, x)
        else:
            ax += bias

        for t in range(T):
            z = sig[t]
            if norm:
                a = torch.mm(h, w_hh_t, out=ah_all[t])
                a2 = torch.mul(a, a, out=ah2_all[t])
                pw, _ = w_x.at(t)
                scale_x, shift_x = _step_norm_forward(ax[t], ax2[t], pw, gx, bx, spec.eps, x_stats, t)
                scale_h, shift_h = _step_norm_forward(a, a2, pw, gh, bh, spec.eps, h_stats, t)
                shift = shift_x.add_(shift_h).add_(bias)
                if d == 1:
                    torch.addcmul(shift, ax[t], scale_x, out=z).addcmul_(a, scale_h)
                else:
                    for b, (start, stop) in enumerate(blocks):
                        torch.addcmul(shift[b], ax[t, start:stop], scale_x[b], out=z[start:stop])
                        z[start:stop].addcmul_(a[start:stop], scale_h[b])
            else:
                torch.addmm(ax[t], h, w_hh_t, out=z)
            s = z.sigmoid_()
            f, i, o, sg = s.split(H, 1)
            g = torch.mul(sg, 2, out=g_all[t]).sub_(1)
            c_prev = c_all[t]
            c = torch.mul(f, c_prev, out=c_all[t + 1]).addcmul_(i, g)
            u = u_all[t]
            if norm:
                c2 = torch.mul(c, c, out=c2_all[t])
                pw, _ = w_c.at(t)
                scale, shift = _step_norm_forward(c, c2, pw, gc, bc, spec.eps, c_stats, t)
                torch.addcmul(shift, c, scale, out=u)
            else:
                torch.mul(c, 2, out=u)
            u.sigmoid_()
            h_new = torch.mul(u, 2, out=out[t]).sub_(1).mul_(o)
            if mask_tm is not None:  # padded steps carry the state through unchanged
                keep = mask_tm[t].unsqueeze(1)
                h_new.copy_(torch.where(keep, h_new, h))
                c.copy_(torch.where(keep, c, c_prev))
            h = h_new

        ctx.spec = spec
        ctx.work = (x_tm, sig, g_all, u_all, c_all, mask_tm, mask_f)
        ctx.pooled = (ax, sig, g_all, u_all, c_all, ax2, ah_all, ah2_all, c2_all)
        if norm:
            spec.stats = {"x": (x_stats.mean, x_stats.var), "h": (h_stats.mean, h_stats.var),
                          "c": (c_stats.mean, c_stats.var)}
            ctx.norm = (ax, ax2, ah_all, ah2_all, c2_all, w_x, w_c, x_stats, h_stats, c_stats)
        ctx.save_for_backward(w_ih, w_hh, weights, gx, gh, gc)
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, d_out):
        if ctx.pooled is None:
            raise RuntimeError(
                "the fused recurrent kernel supports one backward pass per forward; for "
                "retain_graph=True use implementation='reference'"
            )
        w_ih, w_hh, weights, gx, gh, gc = ctx.saved_tensors
        x_tm, sig, g_all, u_all, c_all, mask_tm, mask_f = ctx.work
        spec = ctx.spec
        norm = spec is not None
        T, N, H = u_all.shape
        G = 4 * H
        d_out = d_out.transpose(0, 1)  # (T, N, H)
        want_w = norm and ctx.needs_input_grad[4]
        affine = {"x": [], "h": [], "c": []}
        d_w = None
        dz_all = POOL.take((T, N, G), sig)
        if norm:
            blocks = spec.blocks
            ax, ax2, ah_all, ah2_all, c2_all, w_x, w_c, x_stats, h_stats, c_stats = ctx.norm
            ind = spec.indicator(dz_all)
            ones = dz_all.new_ones(1, N)
            d_w = torch.zeros_like(weights) if want_w else None
            dax_all = POOL.take((T, N, G), sig)
            dah_all = POOL.take((T, N, G), sig)
            d_bias = dz_all.new_zeros(G)
        else:
            dax_all = dah_all = dz_all

        dgates = dz_all.new_empty(N, G)
        scratch_g = (dz_all.new_empty(N, G), dz_all.new_empty(N, G))
        scratch_c = (dz_all.new_empty(N, H), dz_all.new_empty(N, H))
        dh = dz_all.new_zeros(N, H)
        dc = dz_all.new_zeros(N, H)
        for t in range(T - 1, -1, -1):
            dh += d_out[t]
            if mask_tm is not None:
                keep = mask_tm[t].unsqueeze(1)
                dh_keep = torch.where(keep, 0.0, dh)
                dh = torch.where(keep, dh, 0.0)
            s, u, g, c_prev, c = sig[t], u_all[t], g_all[t], c_all[t], c_all[t + 1]
            f, i, o, _ = s.split(H, 1)
            torch.mul(dh, torch.mul(u, 2).sub_(1), out=dgates[:, 2 * H: 3 * H])
            # d tanh(cn) / d (2 cn) = 2 u (1 - u); cn' = 2 cn is what the normaliser produced.
            dcn = (dh * o).mul_(torch.addcmul(u, u, u, value=-1)).mul_(2)
            if norm:
                pw, total = w_c.at(t)
                dcn, aff = _step_norm_backward(
                    dcn, ones @ dcn, c, c2_all[t], c_stats, t, gc, pw, total, ones, [(0, N)],
                    None, None, torch.empty_like(dcn), scratch_c,
                )
                affine["c"].append(aff)
            else:
                dcn.mul_(2)
            dc += dcn
            if mask_tm is not None:
                dc_keep = torch.where(keep, 0.0, dc)
                dc = torch.where(keep, dc, 0.0)
            torch.mul(dc, c_prev, out=dgates[:, :H])
            torch.mul(dc, g, out=dgates[:, H: 2 * H])
            torch.mul(dc, i, out=dgates[:, 3 * H:]).mul_(2)
            dz = torch.mul(dgates, torch.addcmul(s, s, s, value=-1, out=scratch_g[0]), out=dz_all[t])
            dc = dc * f
            if norm:
                pw, total = w_x.at(t)
                mask_t = None if mask_f is None else mask_f[t]
                sum_dz = ind @ dz
                d_bias += sum_dz.sum(0)
                _, aff_x = _step_norm_backward(dz, sum_dz, ax[t], ax2[t], x_stats, t, gx, pw, total,
                                               ind, blocks, mask_t, d_w, dax_all[t], scratch_g)
                dah, aff_h = _step_norm_backward(dz, sum_dz, ah_all[t], ah2_all[t], h_stats, t, gh,
                                                 pw, total, ind, blocks, mask_t, d_w, dah_all[t],
                                                 scratch_g)
                affine["x"].append(aff_x)
                affine["h"].append(aff_h)
            else:
                dah = dz
            dh = dah @ w_hh
            if mask_tm is not None:
                dh += dh_keep
                dc += dc_keep

        # h_{t-1} for dW_h, recomputed from the saved gates exactly as the forward computed it.
        h_prev = POOL.take((T, N, H), sig)
        h_prev[0].zero_()
        torch.mul(u_all[:-1], 2, out=h_prev[1:]).sub_(1).mul_(sig[:-1, :, 2 * H: 3 * H])
        if mask_tm is not None:
            _carry_masked(h_prev, mask_tm)
        d_w_hh = dah_all.view(T * N, G).t() @ h_prev.view(T * N, H)
        if not norm:
            d_bias = dz_all.view(T * N, G).sum(0)
        d_x = (dax_all.view(T * N, G) @ w_ih).view(T, N, -1).transpose(0, 1) \
            if ctx.needs_input_grad[0] else None
        d_w_ih = dax_all.view(T * N, G).t() @ x_tm.view(T * N, -1)
        grads_affine = [None] * 6
        if norm:
            for k, (gamma, side) in enumerate(((gx, "x"), (gh, "h"), (gc, "c"))):
                if gamma.requires_grad:
                    grads_affine[2 * k] = sum(_feature_sum(a[0]) for a in affine[side])
                    grads_affine[2 * k + 1] = sum(_feature_sum(a[1]) for a in affine[side])
        POOL.give(*ctx.pooled, dz_all, h_prev, *((dax_all, dah_all) if norm else ()))
        ctx.pooled = ctx.work = ctx.norm = None
        return (d_x, d_w_ih, d_w_hh, d_bias, d_w, *grads_affine, None, None)


def _carry_masked(h_prev: torch.Tensor, mask_tm: torch.Tensor) -> None:
    """Where step t-1 was padding, h_{t-1} is the state carried from before it."""
    for t in range(1, h_prev.shape[0]):
        keep = mask_tm[t - 1].unsqueeze(1)
        h_prev[t] = torch.where(keep, h_prev[t], h_prev[t - 1])


def _feature_sum(values: torch.Tensor) -> torch.Tensor:
    """(..., F) -> (F,): summed over domains."""
    return values.reshape(-1, values.shape[-1]).sum(0)
