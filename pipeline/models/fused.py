"""Fast whole-sequence kernel of one LSTM / BNLSTM / DDLSTM layer, with a hand-written backward.

Why it exists: an eager per-timestep cell costs hundreds of small autograd ops per step, several
times the fused `nn.LSTM` (measurements in ../../benchmarks/README.md and shared PERFORMANCE.md).
This kernel computes the same function as the reference cell (`layers.py` with `ddbn.py`) with
far fewer ops:

* autograd sees one node per layer and sequence; the forward runs without building a graph and
  the backward is back-propagation through time written out by hand;
* everything on the input side (W_x x_t, its per-timestep statistics, their backward, dW_x and
  dx) is done for all timesteps at once, so only W_h h_{t-1} and the cell stay in the time loop;
* weight gradients are one large matrix product each after the loop;
* tanh is computed as 2 sigmoid(2 z) - 1 (much faster in PyTorch's CPU kernels): the caller
  folds the factor 2 into the g-gate's parameters and the cell-state normaliser's affine;
* batch statistics use E[w a^2] - E[w a]^2, two small matrix products per normaliser.

Notation: G = 4 H gate pre-activations in the order f, i, o, g; d = domains present in the
batch; `weights` (d, N) are the DDBN contributions tau (before the padding mask); `norm` says
whether the layer normalises (BNLSTM / DDLSTM) or not (LSTM).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Guards the division by a domain's total weight when a timestep holds none of its rows.
_MIN_TOTAL_WEIGHT = 1e-12


@dataclass
class NormSpec:
    """What the kernel needs to know about the layer's normalisation for one call."""

    eps: float
    rows: torch.Tensor  # (N,) index of each row's domain among the present ones
    indicator: torch.Tensor  # (d, N) one-hot of the rows' domains
    # Filled by the training forward: batch statistics for the running-average update.
    stats: dict = field(default_factory=dict)


def _per_row(stat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(..., d, F) per-domain values -> (..., N, F) per-row values (broadcast when d = 1)."""
    return stat if stat.shape[-2] == 1 else stat.index_select(-2, rows)


def batch_norm_forward(a, weights, rows, gamma, beta, eps):
    """Weighted batch normalisation of a (..., N, F) with normalised weights (..., d, N).

    Returns (y, mean, var, rstd); mean, var, rstd have shape (..., d, F).
    """
    mean = weights @ a
    var = (weights @ (a * a)).sub_(mean * mean).clamp_min_(0)
    rstd = (var + eps).rsqrt_()
    scale = rstd * gamma
    shift = beta - mean * scale
    y = torch.addcmul(_per_row(shift, rows), a, _per_row(scale, rows))
    return y, mean, var, rstd


def batch_norm_backward(dy, a, mean, var, rstd, weights, total, spec, gamma, want_weights):
    """Backward of `batch_norm_forward` for the output gradient dy (..., N, F).

    Returns (da, d_raw_weights, affine) where d_raw_weights (or None unless `want_weights`) is the
    gradient with respect to the un-normalised weights (..., d, N) whose row sums are `total`
    (..., d, 1), and affine = (block sums of dy * x_hat, block sums of dy), each (..., d, F),
    from which the caller sums gamma's and beta's gradients.
    """
    sum_dy = spec.indicator @ dy  # (..., d, F): sums over each domain's own rows
    sum_dya = spec.indicator @ (dy * a)
    grad_mean = -(rstd * gamma) * sum_dy
    dy_xhat = (sum_dya - mean * sum_dy).mul_(rstd)
    grad_var = dy_xhat.mul(rstd * rstd * gamma).mul_(-0.5)
    coef_const = torch.addcmul(grad_mean, grad_var, mean, value=-2)
    coef_lin = grad_var * 2
    w_t = weights.transpose(-1, -2)
    da = torch.addcmul(w_t @ coef_const, a, w_t @ coef_lin)
    da.addcmul_(dy, _per_row(rstd * gamma, spec.rows))
    d_weights = None
    if want_weights:
        const = torch.addcmul(-grad_mean * mean, grad_var, mean * mean - var).sum(-1, keepdim=True)
        d_weights = coef_const @ a.transpose(-1, -2)
        d_weights += grad_var @ (a * a).transpose(-1, -2)
        d_weights = (d_weights + const) / total
    return da, d_weights, (dy_xhat, sum_dy)


def _sum_to_features(values: torch.Tensor) -> torch.Tensor:
    """(..., F) -> (F,): sum over timesteps and domains."""
    return values.reshape(-1, values.shape[-1]).sum(0)


class FusedRecurrentLayer(torch.autograd.Function):
    """One layer over a whole (T, N, I) sequence from a zero initial state; returns (T, N, H).

    Inputs are the effective parameters (see `layers.py`): for normalising layers the g-gate's
    gamma, beta and bias and the cell normaliser's gamma and beta already carry the factor 2 of
    tanh(z) = 2 sigmoid(2 z) - 1; for the plain LSTM the g-rows of both weight matrices and the
    bias do. `spec` is None for the plain LSTM.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, weights, gx, bx, gh, bh, gc, bc, mask, spec):
        T, N, _ = x.shape
        H = w_hh.shape[1]
        norm = spec is not None
        w_hh_t = w_hh.t()
        keep = None if mask is None else mask.unsqueeze(-1)  # (T, N, 1) bool
        if norm:
            spec_c = cell_state_spec(N, x, spec.eps)
            pw, total = normalised_weights(weights, mask)
            pw_c, total_c = normalised_weights(spec_c.indicator, mask)
            ax = torch.matmul(x, w_ih.t())  # (T, N, G)
            zx, mx, vx, rx = batch_norm_forward(ax, pw, spec.rows, gx, bx, spec.eps)
            zx += bias
        else:
            zx = torch.matmul(x, w_ih.t()).add_(bias)

        h = x.new_zeros(N, H)
        c = x.new_zeros(N, H)
        hs, cs, sig, us = [], [c], [], []
        ah_s, h_stats, c_stats = [], [], []
        for t in range(T):
            if norm:
                ah = h @ w_hh_t
                yh, *stats = batch_norm_forward(ah, _at(pw, t), spec.rows, gh, bh, spec.eps)
                z = yh.add_(zx[t])
                ah_s.append(ah)
                h_stats.append(stats)
            else:
                z = torch.addmm(zx[t], h, w_hh_t)
            s = torch.sigmoid_(z)
            f, i, o, sg = s.split(H, 1)
            c_new = torch.addcmul(f * c, i, sg * 2 - 1)
            if norm:
                cn, *stats = batch_norm_forward(c_new, _at(pw_c, t), spec_c.rows, gc, bc, spec.eps)
                c_stats.append(stats)
            else:
                cn = c_new * 2
            u = torch.sigmoid_(cn)
            h_new = (u * 2 - 1).mul_(o)
            if keep is not None:  # padded steps carry the state through unchanged
                h_new = torch.where(keep[t], h_new, h)
                c_new = torch.where(keep[t], c_new, c)
            h, c = h_new, c_new
            hs.append(h)
            cs.append(c)
            sig.append(s)
            us.append(u)
        out = torch.stack(hs)

        ctx.spec = spec
        ctx.seq = (cs, sig, us)
        if norm:
            mh, vh, rh = (torch.stack(v) for v in zip(*h_stats))
            mc, vc, rc = (torch.stack(v) for v in zip(*c_stats))
            spec.stats = {"x": (mx, vx), "h": (mh, vh), "c": (mc, vc)}
            ctx.x_side = (ax, mx, vx, rx, pw, total)
            ctx.h_side = (ah_s, mh, vh, rh)
            ctx.c_side = (spec_c, mc, vc, rc, pw_c, total_c)
        ctx.save_for_backward(x, w_ih, w_hh, weights, gx, gh, gc, mask, out)
        return out

    @staticmethod
    def backward(ctx, d_out):
        x, w_ih, w_hh, weights, gx, gh, gc, mask, out = ctx.saved_tensors
        spec = ctx.spec
        norm = spec is not None
        cs, sig, us = ctx.seq
        T, N, H = out.shape
        G = 4 * H
        want_w = norm and ctx.needs_input_grad[4]
        keep = None if mask is None else mask.unsqueeze(-1)
        affine = {"x": [], "h": [], "c": []}
        if norm:
            ax, mx, vx, rx, pw, total = ctx.x_side
            ah_s, mh, vh, rh = ctx.h_side
            spec_c, mc, vc, rc, pw_c, total_c = ctx.c_side
            d_w = torch.zeros_like(weights) if want_w else None

        d_out = d_out.contiguous()
        dz_all = out.new_empty(T, N, G)
        dah_all = out.new_empty(T, N, G) if norm else dz_all
        dgates = out.new_empty(N, G)
        dh = out.new_zeros(N, H)
        dc = out.new_zeros(N, H)
        for t in range(T - 1, -1, -1):
            dh = dh + d_out[t]
            if keep is not None:
                dh_keep = torch.where(keep[t], 0.0, dh)
                dh = torch.where(keep[t], dh, 0.0)
            s, u, c_prev = sig[t], us[t], cs[t]
            f, i, o, sg = s.split(H, 1)
            torch.mul(dh, u * 2 - 1, out=dgates[:, 2 * H: 3 * H])
            dcn = (dh * o).mul_(torch.addcmul(u, u, u, value=-1)).mul_(2)
            if norm:
                dcn, _, aff = batch_norm_backward(
                    dcn, cs[t + 1], mc[t], vc[t], rc[t], _at(pw_c, t), _at(total_c, t),
                    spec_c, gc, False,
                )
                affine["c"].append(aff)
            else:
                dcn = dcn * 2
            dc = dc + dcn
            if keep is not None:
                dc_keep = torch.where(keep[t], 0.0, dc)
                dc = torch.where(keep[t], dc, 0.0)
            torch.mul(dc, c_prev, out=dgates[:, :H])
            torch.mul(dc, sg * 2 - 1, out=dgates[:, H: 2 * H])
            torch.mul(dc, i, out=dgates[:, 3 * H:]).mul_(2)
            dz = torch.mul(dgates, torch.addcmul(s, s, s, value=-1), out=dz_all[t])
            dc = dc * f
            if norm:
                dah, dw_t, aff = batch_norm_backward(
                    dz, ah_s[t], mh[t], vh[t], rh[t], _at(pw, t), _at(total, t), spec, gh, want_w
                )
                affine["h"].append(aff)
                if want_w:
                    d_w += dw_t if mask is None else dw_t * mask[t].to(dw_t.dtype)
                dah_all[t] = dah
            else:
                dah = dz
            dh = dah @ w_hh
            if keep is not None:
                dh = dh + dh_keep
                dc = dc + dc_keep

        h_prev = torch.cat([out.new_zeros(1, N, H), out[:-1]])
        d_w_hh = dah_all.reshape(-1, G).t() @ h_prev.reshape(-1, H)
        d_bias = dz_all.sum((0, 1))
        if norm:
            dax, dw_x, aff = batch_norm_backward(dz_all, ax, mx, vx, rx, pw, total, spec, gx, want_w)
            affine["x"] = [aff]
            if want_w:
                d_w += (dw_x if mask is None else dw_x * mask.unsqueeze(1).to(dw_x.dtype)).sum(0)
        else:
            dax = dz_all
        d_x = dax @ w_ih if ctx.needs_input_grad[0] else None
        d_w_ih = dax.reshape(-1, G).t() @ x.reshape(-1, x.shape[-1])

        grads_affine = []
        for side, gamma in (("x", gx), ("h", gh), ("c", gc)):
            if norm and gamma.requires_grad:
                grads_affine += [_sum_to_features(torch.stack([a[k] for a in affine[side]]))
                                 for k in (0, 1)]
            else:
                grads_affine += [None, None]
        return (d_x, d_w_ih, d_w_hh, d_bias, d_w if want_w else None, *grads_affine, None, None)


def cell_state_spec(n_rows: int, like: torch.Tensor, eps: float) -> NormSpec:
    """One domain over the whole batch: how the cell state is normalised (SPEC.md 3)."""
    return NormSpec(
        eps=eps,
        rows=torch.zeros(n_rows, dtype=torch.long, device=like.device),
        indicator=like.new_ones(1, n_rows),
    )


def normalised_weights(weights: torch.Tensor, mask: torch.Tensor | None):
    """Contribution weights with padded rows zeroed, divided by their row sums.

    Returns (normalised (d, N) or (T, d, N) with a mask, row sums (..., d, 1)).
    """
    raw = weights if mask is None else weights.unsqueeze(0) * mask.unsqueeze(1).to(weights.dtype)
    total = raw.sum(-1, keepdim=True).clamp_min(_MIN_TOTAL_WEIGHT)
    return raw / total, total


def _at(per_step: torch.Tensor, t: int) -> torch.Tensor:
    """Timestep t of a (T, ...) tensor, or the tensor itself when it is the same for all t."""
    return per_step if per_step.dim() == 2 else per_step[t]
