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
* tanh is 2 sigmoid(2 z) - 1 (several times faster in PyTorch's CPU kernels): `train_sequence`
  and `evaluate_layer`, the entry points, fold the factor 2 into the g-gate's parameters and the
  cell-state normaliser's affine, so that callers pass the layer's real parameters;
* batch statistics are E[w a] and E[w a^2]; the input- and hidden-side normalisers share their
  weights and their gradient (both add into the gate pre-activations), so one product with
  [W_x x_t | W_h h_{t-1} | their squares] gives both sides' moments, and extra rows of the same
  product (the weights' derivatives) give what alpha's gradient needs: no per-step work for it
  in the backward.

`evaluate_sequence` runs the same loop in evaluation mode: population statistics as fixed
per-timestep affine maps, no graph, nothing saved.

Notation: N rows (batch), T timesteps, H hidden units, G = 4 H gate pre-activations in the order
f, i, o, g; d domains present in the batch, each a contiguous block of rows. `spec`
(`stepnorm.NormSpec`) carries the DDBN contributions tau (d, N) and their derivatives with respect
to the alphas in use; the kernel takes alpha itself as an input and returns its gradient, summed
after the loop from the forward's moments. Without normalisation (plain LSTM) `spec` is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .stepnorm import (
    StepStats,
    StepWeights,
    alpha_gradient,
    real_mean,
    step_norm_backward,
    step_norm_forward,
)
from .workspace import POOL

# -- the layer ------------------------------------------------------------------------------------


class FusedRecurrentLayer(torch.autograd.Function):
    """One layer over a whole sequence from a zero state: x (N, T, I) -> (N, T, H).

    The output is a transposed view of a time-major (T, N, H) tensor, so that the next layer's
    kernel gets its time-major input without a copy. Inputs are the effective parameters (see
    `train_sequence`): for normalising layers the g-gate's gamma, beta and bias and the cell
    normaliser's gamma and beta carry the factor 2 of tanh(z) = 2 sigmoid(2 z) - 1; for the plain
    LSTM the g-rows of both weight matrices and the bias do. `mask` (N, T) bool marks real frames.
    Returns (out, mean_x, var_x, mean_h, var_h, mean_c, var_c): the batch statistics (T, d, F),
    for the running averages, as outputs (empty for the plain LSTM); only `out` is differentiable.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec):
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
        tanh_all = POOL.take((T, N, H), x)  # tanh of the (normalised) cell state
        # [c_t | c_t^2] per step for the normalisers (c_t alone without), index 0 the zero state
        cc = POOL.take((T + 1, N, 2 * H if norm else H), x)
        cc[0].zero_()
        h = x.new_zeros(N, H)
        u = x.new_empty(N, H)
        minus_one = x.new_full((1,), -1.0)  # 2 s - 1 as one add(-1, s, alpha=2)
        if norm:
            blocks = spec.blocks
            d = len(blocks)
            equal = spec.equal_blocks()
            w_x = StepWeights(spec.weights, mask_f, spec.directions, spec.owners)
            w_c = StepWeights(x.new_ones(1, N), mask_f)
            # Batch normalisation ignores a constant shift of its input, so x is centred first:
            # the same function, but moments of well-centred values, which E[a^2] - E[a]^2 needs
            # in float32 (inputs such as CNN logits can sit far from zero).
            centre = real_mean(x_tm, mask_f)
            x_tm = x_tm - centre
            shift_x = w_ih @ centre  # added back to the x-side means for the population statistics
            # per step [W_x x_t | W_h h_{t-1} | their squares]: one product gives all moments
            acts = POOL.take((T, N, 4 * G), x)
            torch.mm(x_tm.view(T * N, I), w_ih.t(), out=acts.view(T * N, 4 * G)[:, :G])
            gamma_xh, beta_xh = torch.cat([gx, gh]), torch.cat([bx, bh])
            xh_stats = StepStats(T, d, 2 * G, x, len(spec.owners))
            c_stats = StepStats(T, 1, H, x)
        else:
            acts = POOL.take((T, N, G), x)
            torch.mm(x_tm.view(T * N, I), w_ih.t(), out=acts.view(T * N, G)).add_(bias)

        # Per-step views, made once: indexing inside the loop costs a call each.
        sig_t, g_t, tanh_t, out_t = sig.unbind(0), g_all.unbind(0), tanh_all.unbind(0), out.unbind(0)
        c_t = cc[..., :H].unbind(0)
        if norm:
            buf_t, sides_t, squares_t = (acts.unbind(0), acts[..., : 2 * G].unbind(0),
                                         acts[..., 2 * G:].unbind(0))
            ah_t = acts[..., G: 2 * G].unbind(0)
            cbuf_t, c2_t = cc.unbind(0), cc[..., H:].unbind(0)
            if equal:  # every domain block at once through (d, N / d, .) views
                rows = N // d
                z_blocks = sig.view(T, d, rows, G).unbind(0)
                ax_blocks = acts[..., :G].view(T, d, rows, G).unbind(0)
                ah_blocks = acts[..., G: 2 * G].view(T, d, rows, G).unbind(0)
        for t in range(T):
            z = sig_t[t]
            if norm:
                a_h = torch.mm(h, w_hh_t, out=ah_t[t])
                torch.mul(sides_t[t], sides_t[t], out=squares_t[t])
                scale, shift = step_norm_forward(buf_t[t], w_x.at(t)[0], gamma_xh, beta_xh,
                                                  spec.eps, xh_stats.steps[t])
                shift = shift[:, :G].add(shift[:, G:]).add_(bias)
                if equal:
                    torch.addcmul(shift.view(d, 1, G), ax_blocks[t], scale[:, :G].view(d, 1, G),
                                  out=z_blocks[t])
                    z_blocks[t].addcmul_(ah_blocks[t], scale[:, G:].view(d, 1, G))
                else:
                    for b, (start, stop) in enumerate(blocks):
                        torch.addcmul(shift[b], buf_t[t][start:stop, :G], scale[b, :G],
                                      out=z[start:stop])
                        z[start:stop].addcmul_(a_h[start:stop], scale[b, G:])
            else:
                torch.addmm(acts[t], h, w_hh_t, out=z)
            s = z.sigmoid_()
            f, i, o, sg = s.split(H, 1)
            g = torch.add(minus_one, sg, alpha=2, out=g_t[t])
            c_prev = c_t[t]
            c = torch.mul(f, c_prev, out=c_t[t + 1]).addcmul_(i, g)
            if norm:
                torch.mul(c, c, out=c2_t[t + 1])
                scale, shift = step_norm_forward(cbuf_t[t + 1], w_c.at(t)[0], gc, bc, spec.eps,
                                                  c_stats.steps[t])
                torch.addcmul(shift, c, scale, out=u)
            else:
                torch.mul(c, 2, out=u)
            tanh_c = torch.add(minus_one, u.sigmoid_(), alpha=2, out=tanh_t[t])
            h_new = torch.mul(tanh_c, o, out=out_t[t])
            if mask_tm is not None:  # padded steps carry the state through unchanged
                keep = mask_tm[t].unsqueeze(1)
                h_new.copy_(torch.where(keep, h_new, h))
                c.copy_(torch.where(keep, c, c_prev))
            h = h_new

        ctx.spec = spec
        ctx.work = (x_tm, sig, g_all, tanh_all, cc, acts, mask_tm)
        ctx.pooled = (sig, g_all, tanh_all, cc, acts)
        if norm:
            d = len(spec.blocks)
            moments, var = xh_stats.moments, xh_stats.var
            stats = (moments[:, :d, :G] + shift_x, var[..., :G], moments[:, :d, G: 2 * G], var[..., G:],
                     c_stats.moments[:, :1, :H], c_stats.var)
            ctx.norm = (w_x, w_c, xh_stats, c_stats, gamma_xh)
        else:
            stats = (x.new_empty(0),) * 6
        ctx.save_for_backward(w_ih, w_hh, alpha, gx, gh, gc)
        ctx.mark_non_differentiable(*stats)
        return (out.transpose(0, 1), *stats)

    @staticmethod
    def backward(ctx, d_out, *_unused_stat_grads):
        if ctx.pooled is None:
            raise RuntimeError(
                "the fused recurrent kernel supports one backward pass per forward; for "
                "retain_graph=True use implementation='reference'"
            )
        w_ih, w_hh, alpha, gx, gh, gc = ctx.saved_tensors
        x_tm, sig, g_all, tanh_all, cc, acts, mask_tm = ctx.work
        spec = ctx.spec
        norm = spec is not None
        T, N, H = tanh_all.shape
        G = 4 * H
        d_out = d_out.transpose(0, 1)  # (T, N, H)
        want_alpha = norm and ctx.needs_input_grad[4] and len(spec.owners) > 0
        affine_xh, affine_c = [], []
        d_alpha = None
        if norm:
            blocks = spec.blocks
            w_x, w_c, xh_stats, c_stats, gamma_xh = ctx.norm
            ind = spec.indicator(sig)
            ones = sig.new_ones(1, N)
            d_acts = POOL.take((T, N, 2 * G), sig)  # [d(W_x x_t) | d(W_h h_{t-1})]
            d_bias = sig.new_zeros(G)
            scratch = (sig.new_empty(N, 2 * G), sig.new_empty(N, 4 * G))
            scratch_c = (sig.new_empty(N, H), sig.new_empty(N, 2 * H))
            equal = spec.equal_blocks()
            # per step, kept for the alpha gradient after the loop
            coef_all, grad_mean_all = sig.new_empty(T, len(blocks), 4 * G), sig.new_empty(T, len(blocks), 2 * G)
            coef_c, grad_mean_c = sig.new_empty(1, 2 * H), sig.new_empty(1, H)
            dcn_out = sig.new_empty(N, H)
        else:
            d_acts = POOL.take((T, N, G), sig)  # the gradient of the gate pre-activations

        dgates = sig.new_empty(N, G)
        sig_slope = sig.new_empty(N, G)
        dz = sig.new_empty(N, G)
        dh = sig.new_zeros(N, H)
        dc = sig.new_zeros(N, H)
        sig_t, g_t, tanh_t = sig.unbind(0), g_all.unbind(0), tanh_all.unbind(0)
        zeros_h = sig.new_zeros(N, H)
        # d tanh / d(what produced it): for normalising layers that is the normaliser's output,
        # which carries the factor 2 of tanh(cn) = 2 sigmoid(2 cn) - 1, so (1 - tanh^2) / 2;
        # for the plain LSTM it is c itself, so 1 - tanh^2.
        cell_slope = 0.5 if norm else 1.0
        cell_slope_t = sig.new_full((1,), cell_slope)
        c_t, d_out_t, d_acts_t = cc[..., :H].unbind(0), d_out.unbind(0), d_acts.unbind(0)
        if norm:
            cbuf_t, buf_t, dah_t = cc.unbind(0), acts.unbind(0), d_acts[..., G:].unbind(0)
        for t in range(T - 1, -1, -1):
            dh += d_out_t[t]
            if mask_tm is not None:
                keep = mask_tm[t].unsqueeze(1)
                dh_keep = torch.where(keep, 0.0, dh)
                dh = torch.where(keep, dh, 0.0)
            s, tanh_c, g, c_prev = sig_t[t], tanh_t[t], g_t[t], c_t[t]
            f, i, o, _ = s.split(H, 1)
            torch.mul(dh, tanh_c, out=dgates[:, 2 * H: 3 * H])
            dcn = (dh * o).mul_(torch.addcmul(cell_slope_t, tanh_c, tanh_c, value=-cell_slope))
            if norm:
                dcn, aff = step_norm_backward(
                    dcn, ones @ dcn, cbuf_t[t + 1], c_stats.steps[t], gc, w_c.at(t), ones,
                    [(0, N)], dcn_out, scratch_c, coef_c, grad_mean_c,
                )
                affine_c.append(aff)
            dc += dcn
            if mask_tm is not None:
                dc_keep = torch.where(keep, 0.0, dc)
                dc = torch.where(keep, dc, 0.0)
            torch.mul(dc, c_prev, out=dgates[:, :H])
            torch.mul(dc, g, out=dgates[:, H: 2 * H])
            torch.addcmul(zeros_h, dc, i, value=2, out=dgates[:, 3 * H:])  # g = 2 sigmoid - 1
            slope = torch.addcmul(s, s, s, value=-1, out=sig_slope)
            if norm:
                torch.mul(dgates, slope, out=dz)
                sum_dz = ind @ dz
                d_bias += sum_dz.sum(0)
                _, aff = step_norm_backward(
                    dz, sum_dz, buf_t[t], xh_stats.steps[t], gamma_xh, w_x.at(t), ind, blocks,
                    d_acts_t[t], scratch, coef_all[t], grad_mean_all[t], equal,
                )
                affine_xh.append(aff)
                dh = dah_t[t] @ w_hh
            else:
                dh = torch.mul(dgates, slope, out=d_acts_t[t]) @ w_hh
            dc = dc * f
            if mask_tm is not None:
                dh += dh_keep
                dc += dc_keep

        # h_{t-1} for dW_h, recomputed from the saved gates exactly as the forward computed it.
        h_prev = POOL.take((T, N, H), sig)
        h_prev[0].zero_()
        torch.mul(tanh_all[:-1], sig[:-1, :, 2 * H: 3 * H], out=h_prev[1:])
        if mask_tm is not None:
            _carry_masked(h_prev, mask_tm)
        flat = d_acts.view(T * N, -1)
        d_x_side, d_h_side = (flat[:, :G], flat[:, G:]) if norm else (flat, flat)
        d_w_hh = d_h_side.t() @ h_prev.view(T * N, H)
        if not norm:
            d_bias = flat.sum(0)
        d_x = (d_x_side @ w_ih).view(T, N, -1).transpose(0, 1) if ctx.needs_input_grad[0] else None
        d_w_ih = d_x_side.t() @ x_tm.view(T * N, -1)
        grads_affine = [None] * 6
        if norm:
            sides = ((gx, affine_xh, slice(0, G)), (gh, affine_xh, slice(G, 2 * G)),
                     (gc, affine_c, slice(0, H)))
            for k, (gamma, sums, cols) in enumerate(sides):
                if gamma.requires_grad:
                    grads_affine[2 * k] = sum(_feature_sum(a[0][:, cols]) for a in sums)
                    grads_affine[2 * k + 1] = sum(_feature_sum(a[1][:, cols]) for a in sums)
        if want_alpha:
            d_alpha = torch.zeros_like(alpha)
            values = alpha_gradient(xh_stats.moments, xh_stats.var, w_x.direction_sums, coef_all, grad_mean_all,
                                    spec.owners, len(blocks)).to(alpha.dtype)
            for k, index in enumerate(spec.alpha_indices):  # scalar writes: no index tensor to copy over
                d_alpha[index] = values[k]
        POOL.give(*ctx.pooled, d_acts, h_prev)
        ctx.pooled = ctx.work = ctx.norm = None
        return (d_x, d_w_ih, d_w_hh, d_bias, d_alpha, *grads_affine, None, None)


def train_sequence(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec):
    """One layer in training mode from the real parameters: (out (N, T, H), batch statistics
    (mean_x, var_x, mean_h, var_h, mean_c, var_c), each (T, d, F), empty without normalisers)."""
    g_rows = _g_rows(w_hh.shape[1], x)  # tanh(z) = 2 sigmoid(2 z) - 1: the factor 2 of the g-gate
    if spec is None:
        out, *stats = FusedRecurrentLayer.apply(x, w_ih * g_rows[:, None], w_hh * g_rows[:, None], bias * g_rows,
                                                None, None, None, None, None, None, None, mask, None)
    else:
        out, *stats = FusedRecurrentLayer.apply(x, w_ih, w_hh, bias * g_rows, alpha, gx * g_rows, bx * g_rows,
                                                gh * g_rows, bh * g_rows, gc * 2, bc * 2, mask, spec)
    return out, stats


def evaluate_layer(x, w_ih, w_hh, bias, mask, affine: EvalAffine | None):
    """One layer in evaluation mode from the real parameters and the population statistics as
    affine maps (`EvalAffine`, with beta_x + beta_h + bias in `shift_gates`), no graph."""
    g_rows = _g_rows(w_hh.shape[1], x)
    if affine is None:
        return evaluate_sequence(x, w_ih * g_rows[:, None], w_hh * g_rows[:, None], bias * g_rows, mask, None)
    folded = EvalAffine(scale_x=affine.scale_x * g_rows, scale_h=affine.scale_h * g_rows,
                        shift_gates=affine.shift_gates * g_rows, scale_c=affine.scale_c * 2, shift_c=affine.shift_c * 2)
    return evaluate_sequence(x, w_ih, w_hh, None, mask, folded)


def _g_rows(hidden: int, like: torch.Tensor) -> torch.Tensor:
    """(4 H,) factors: 1 for the f, i, o rows, 2 for the g rows."""
    factors = like.new_ones(4 * hidden)
    factors[3 * hidden:] = 2
    return factors


def _carry_masked(h_prev: torch.Tensor, mask_tm: torch.Tensor) -> None:
    """Where step t-1 was padding, h_{t-1} is the state carried from before it."""
    for t in range(1, h_prev.shape[0]):
        keep = mask_tm[t - 1].unsqueeze(1)
        h_prev[t] = torch.where(keep, h_prev[t], h_prev[t - 1])


def _feature_sum(values: torch.Tensor) -> torch.Tensor:
    """(..., F) -> (F,): summed over domains."""
    return values.reshape(-1, values.shape[-1]).sum(0)


# -- evaluation -----------------------------------------------------------------------------------


@dataclass
class EvalAffine:
    """Evaluation-mode normalisation of one layer as per-timestep affine maps, each (T, R, F)
    with R = 1 (every row from one domain) or R = N (per-row domains): the normalised value of
    a is a * scale + shift. `shift_gates` already holds beta_x + beta_h + bias."""

    scale_x: torch.Tensor
    scale_h: torch.Tensor
    shift_gates: torch.Tensor
    scale_c: torch.Tensor
    shift_c: torch.Tensor


@torch.no_grad()
def evaluate_sequence(x, w_ih, w_hh, bias, mask, affine: EvalAffine | None):
    """Forward of one layer in evaluation mode, without autograd: x (N, T, I) -> (N, T, H).

    Parameters are the effective ones as for `FusedRecurrentLayer` (factor 2 of the g-gate and of
    the cell normaliser folded in); `affine` is None for the plain LSTM.
    """
    N, T, I = x.shape
    H = w_hh.shape[1]
    G = 4 * H
    w_hh_t = w_hh.t()
    x_tm = x.transpose(0, 1).contiguous()
    mask_tm = None if mask is None else mask.t().unsqueeze(-1)  # (T, N, 1)
    acts = (x_tm.view(T * N, I) @ w_ih.t()).view(T, N, G)
    if affine is None:
        acts += bias
    out = x.new_empty(T, N, H)
    h = x.new_zeros(N, H)
    c = x.new_zeros(N, H)
    z = x.new_empty(N, G)
    u = x.new_empty(N, H)
    for t in range(T):
        if affine is None:
            torch.addmm(acts[t], h, w_hh_t, out=z)
        else:
            torch.mm(h, w_hh_t, out=z).mul_(affine.scale_h[t])
            z.addcmul_(acts[t], affine.scale_x[t]).add_(affine.shift_gates[t])
        s = z.sigmoid_()
        f, i, o, sg = s.split(H, 1)
        c_new = torch.mul(f, c).addcmul_(i, sg.mul(2).sub_(1))
        if affine is None:
            torch.mul(c_new, 2, out=u)
        else:
            torch.addcmul(affine.shift_c[t], c_new, affine.scale_c[t], out=u)
        h_new = torch.mul(u.sigmoid_(), 2, out=out[t]).sub_(1).mul_(o)
        if mask_tm is not None:
            h_new.copy_(torch.where(mask_tm[t], h_new, h))
            c_new = torch.where(mask_tm[t], c_new, c)
        h, c = h_new, c_new
    return out.transpose(0, 1)
