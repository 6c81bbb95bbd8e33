"""One recurrent layer over a whole sequence through the Triton kernels: the autograd Function, and the
entry points `train_sequence` / `evaluate_layer` with the interface of `pipeline.models.fused`.

Per layer and call, training: W_x x for all timesteps as one product (x centred first, as the other
kernels do: batch normalisation ignores the shift), the input side's normaliser as one batched kernel,
then the recurrence: one `persistent.sequence_forward` launch (or, with the step kernels, one
`kernels.step_forward` per timestep). The backward mirrors it: the recurrence backward, the input side's
normaliser backward as one batched kernel, then dx, dW_x, dW_h as large products and every sum over time
(bias, gamma, beta, alpha) from per-(timestep, program) partials. Evaluation: the product, then the
forward recurrence with the population statistics as affine maps.

Parameters are the layer's real ones (no tanh folding: the kernels compute tanh themselves). Shapes
as in `kernels.py`: N rows, T timesteps, I inputs, H hidden units, G = 4 H gates, D domains present.

Where the kernels do not apply, the call goes to the fused kernel with a one-time warning naming why:
a dtype other than float32, more than 2 domains present, or more than `MAX_STAT_ROWS` rows in
training with a normaliser (a program holds every row). Where the persistent kernels were asked for
but do not fit (`launcher.choose_persistent`), the step kernels run, with a one-time warning. Under
implementation="auto" (`fallback`), a backward whose kernels fail is recomputed through the fused kernel.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .. import fused
from ..contribution import alpha_index
from ..fused import EvalAffine
from ..stepnorm import NormSpec, real_mean
from . import kernels, persistent
from .launcher import (
    MAX_REGISTERS,
    MAX_STAT_ROWS,
    Plan,
    barrier_status,
    cdiv,
    launch,
    next_power_of_2,
    plan,
)

_warned: set[str] = set()


def unsupported_reason(x: torch.Tensor, domains: int = 1, statistics: bool = False) -> str | None:
    """Why these kernels cannot take a call (the fused kernel does), or None: x (N, T, I), `domains`
    present in the batch, `statistics`: training with a normaliser (batch statistics over the rows)."""
    if x.dtype != torch.float32:
        return f"the Triton kernels compute in float32, not {x.dtype}"
    if domains > 2:
        return (f"{domains} domains are present in the batch; the Triton kernels take 1 or 2 (a step "
                "program holds both domains' statistics)")
    if statistics and x.shape[0] > MAX_STAT_ROWS:
        return (f"{x.shape[0]} rows in training: a Triton step program holds every row of the batch in "
                f"registers, at most {MAX_STAT_ROWS}")
    return None


def _fallback(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"implementation='triton': {reason}; using the fused kernel for such calls",
                      stacklevel=4)


@dataclass
class Running:
    """A layer's moving averages, for the step kernels to update in place: (mean, var) of the input side
    and of the hidden side (L, S, G) and of the cell state (1, S, H); the layer's domain of each present
    domain; S slots; the momentum."""

    x: tuple[torch.Tensor, torch.Tensor]
    h: tuple[torch.Tensor, torch.Tensor]
    c: tuple[torch.Tensor, torch.Tensor]
    domains: tuple[int, int]
    slots: int
    momentum: float


class TritonRecurrentLayer(torch.autograd.Function):
    """x (N, T, I) -> (out (N, T, H), mean_x, var_x, mean_h, var_h, mean_c, var_c), the statistics
    (T, d, F) for the running averages (empty without normalisers); only `out` is differentiable.
    `out` is a transposed view of a time-major (T, N, H) tensor (the next layer reads it without a copy)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec, running=None,
                alpha_gate=None, fallback=False):
        # running: `Running`, the moving averages for the kernels to update (else the caller does);
        # alpha_gate (E,): 1 where alpha's gradient passes, 0 where it was clamped to its bounds;
        # fallback: a backward that fails goes through the fused kernel instead (implementation "auto")
        N, T, I = x.shape
        H = w_hh.shape[1]
        G = 4 * H
        norm = spec is not None
        chosen = _plan(N, H, norm, x.device)
        w_hh = w_hh.contiguous()  # the kernels index it densely (a parameter already is)
        x_tm = x.transpose(0, 1).contiguous()  # (T, N, I)
        mask_f = None if mask is None else mask.t().to(x.dtype).contiguous()  # (T, N)
        any_tensor = x_tm  # for the pointer arguments a kernel variant does not read
        mask_arg = any_tensor if mask_f is None else mask_f
        out, cell, tanh_cell = (x.new_empty(T, N, H) for _ in range(3))
        gates = x.new_empty(T, N, G)
        if norm:
            d = len(spec.blocks)
            split = spec.blocks[1][0] if d == 2 else N
            centre = real_mean(x_tm, mask_f)
            x_in = x_tm - centre
            ax = torch.mm(x_in.view(T * N, I), w_ih.t()).view(T, N, G)
            zx, ah = torch.empty_like(ax), torch.empty_like(ax)
            mean_x, var_x, mean_h, var_h = (x.new_empty(T, d, G) for _ in range(4))
            mean_c, var_c = x.new_empty(T, 1, H), x.new_empty(T, 1, H)
            weights = spec.weights.contiguous()
            block_f = _block_f(N)
            launch(kernels.input_norm_forward, (T, cdiv(G, block_f)), ax, weights, mask_arg, gx, bx, bh,
                   bias, zx, mean_x, var_x, N, G, split, spec.eps, D=d, HAS_MASK=mask_f is not None,
                   BLOCK_N=max(16, next_power_of_2(N)), BLOCK_F=block_f, num_warps=_input_warps(N))
            norm_args = (ah, weights, gh, mean_h, var_h, gc, bc, mean_c, var_c)
            shift_x = w_ih @ centre  # the centring shifted the input side's means by this
        else:
            d, split = 1, N
            x_in = x_tm
            zx = torch.addmm(bias, x_tm.view(T * N, I), w_ih.t()).view(T, N, G)
            ax = None
            norm_args = (any_tensor,) * 9
        if running is not None:
            running_args = (*running.x, *running.h, *running.c, mean_x, var_x, shift_x, running.slots,
                            *running.domains, running.momentum)
        else:
            running_args = (any_tensor,) * 9 + (1, 0, 0, 0.0)
        arguments = (zx, w_hh, out, cell, gates, tanh_cell, mask_arg, *norm_args, *running_args,
                     *(any_tensor,) * 3, 1, 0)
        constexprs = {"NORM": norm, "TRAIN": True, "RUNNING": running is not None, "D": d,
                      "HAS_MASK": mask_f is not None}
        sizes = (N, H, split, spec.eps if norm else 0.0)
        _forward_launches(chosen, T, arguments, sizes, constexprs, x.device)

        ctx.spec, ctx.plan, ctx.alpha_gate = spec, chosen, alpha_gate
        ctx.work = (x_in, mask_f, out, cell, gates, tanh_cell, ax, norm_args)
        if norm:
            stats = (mean_x + shift_x, var_x, mean_h, var_h, mean_c, var_c)
            ctx.x_stats = (mean_x, var_x)
        else:
            stats = (x.new_empty(0),) * 6
        ctx.alphas = None if alpha is None else alpha.shape[0]  # alpha itself is not needed: it may move
        # the fused kernel's backward recomputes the layer from these (references, not copies)
        ctx.fallback = (x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask) if fallback else None
        ctx.save_for_backward(w_ih, w_hh, gx, gh, gc)
        ctx.mark_non_differentiable(*stats)
        ctx.set_materialize_grads(False)  # no zero gradients for the statistics (some 60 operators a step)
        return (out.transpose(0, 1), *stats)

    @staticmethod
    def backward(ctx, d_out, *_unused_stat_grads):
        if ctx.work is None:
            raise RuntimeError("the Triton recurrent kernel supports one backward pass per forward; for "
                               "retain_graph=True use implementation='reference'")
        try:
            grads = _backward(ctx, d_out)
        except Exception as error:
            if ctx.fallback is None:
                raise
            from ..layers import auto_failed

            auto_failed(ctx.work[2].device, error)
            grads = _fused_backward(ctx, d_out)
        ctx.work = ctx.x_stats = ctx.alpha_gate = ctx.fallback = None
        return (*grads, None, None, None, None, None)


def _backward(ctx, d_out):
    """The Triton kernels' backward: the 11 gradients of `TritonRecurrentLayer.forward`'s tensors."""
    w_ih, w_hh, gx, gh, gc = ctx.saved_tensors
    x_in, mask_f, out, cell, gates, tanh_cell, ax, norm_args = ctx.work
    spec, chosen = ctx.spec, ctx.plan
    tiles = chosen.tiles
    norm = spec is not None
    T, N, H = out.shape
    G = 4 * H
    d_out = torch.zeros_like(out) if d_out is None else d_out.transpose(0, 1).contiguous()  # (T, N, H)
    mask_arg = out if mask_f is None else mask_f
    dz = torch.empty_like(gates)
    carry = out.new_empty(2, N, H)  # dL/dh and dL/dc carried between steps
    e = len(spec.owners) if norm else 0
    programs = tiles.programs if chosen.kernel == "persistent" else cdiv(H, tiles.block_h)
    if norm:
        ah, weights, gh, mean_h, var_h, _, _, mean_c, var_c = norm_args
        d = len(spec.blocks)
        split = spec.blocks[1][0] if d == 2 else N
        dah = torch.empty_like(gates)
        directions = weights if spec.directions is None else spec.directions.contiguous()
        # per-(timestep, program) partial sums, reduced after the loop
        sums = out.new_empty(T, 3 * G + 2 * H)  # [dgamma_h | dgamma_x | dbeta | dgamma_c | dbeta_c]
        dgamma_h, dgamma_x, dbeta, dgamma_c, dbeta_c = sums.split([G, G, G, H, H], 1)
        block_f = _block_f(N)
        x_programs = cdiv(G, block_f)
        alpha_parts = out.new_empty(T, programs + x_programs, max(e, 1))
        step_norm = (ah, weights, directions, gh, mean_h, var_h, gc, mean_c, var_c, dgamma_h, dgamma_c,
                     dbeta_c, alpha_parts, sums.stride(0), alpha_parts.stride(0))
    else:
        d, split, dah = 1, N, dz
        step_norm = (out,) * 13 + (0, 0)
    sizes = (N, H, split, spec.eps if norm else 0.0)
    constexprs = {"NORM": norm, "D": d, "E": e, "HAS_MASK": mask_f is not None, "BLOCK_N": tiles.block_n,
                  "BLOCK_H": tiles.block_h, "PRECISION": chosen.precision, "EMULATE": chosen.emulate}
    if chosen.kernel == "persistent":
        partials = out.new_empty(2, programs, N, H)  # each program's dah_t W_h, by the parity of t
        ah = norm_args[0] if norm else out
        arguments = (d_out, w_hh, gates, tanh_cell, cell, mask_arg, carry[0], carry[1], partials, dz, dah, ah,
                     *step_norm[1:])
        for start, stop in _ranges(chosen, T)[::-1]:
            launch(persistent.sequence_backward, tiles.grid, start, stop, T, *arguments,
                   *_barrier_arguments(chosen, out.device), *sizes, BLOCK_K=tiles.block_k,
                   BLOCK_Q=tiles.block_q, SYNC=chosen.sync, num_warps=tiles.num_warps, num_stages=1,
                   maxnreg=MAX_REGISTERS, **constexprs)
    else:
        rest = (T, d_out, w_hh, gates, tanh_cell, cell, mask_arg, carry[0], carry[1], dz, dah, *step_norm,
                *sizes)
        grid = (programs, cdiv(N, tiles.block_n))
        for t in range(T - 1, -1, -1):
            launch(kernels.step_backward, grid, t, *rest, BLOCK_K=tiles.block_k_backward,
                   num_warps=tiles.num_warps, num_stages=tiles.num_stages, maxnreg=MAX_REGISTERS,
                   **constexprs)

    grads = [None] * 11  # x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc
    if norm:
        mean_x, var_x = ctx.x_stats
        x_alpha = alpha_parts[:, programs:]
        launch(kernels.input_norm_backward, (T, x_programs), dz, ax, mean_x, var_x, weights, directions,
               mask_arg, gx, dgamma_x, dbeta, x_alpha, sums.stride(0), alpha_parts.stride(0), N, G, split,
               spec.eps, D=d, E=e, HAS_MASK=mask_f is not None, BLOCK_N=max(16, next_power_of_2(N)),
               BLOCK_F=block_f, num_warps=_input_warps(N))
        # dz now holds the input side's gradient dL/d(W_x x_t); dah the hidden side's
        totals = sums.sum(0)
        d_bias = totals[2 * G: 3 * G]
        # gx, bx, gh, bh, gc, bc: columns of the totals (each slice is an operator: only those wanted)
        columns = ((G, 2 * G), (2 * G, 3 * G), (0, G), (2 * G, 3 * G), (3 * G, 3 * G + H),
                   (3 * G + H, 3 * G + 2 * H))
        for k, (start, stop) in enumerate(columns):
            if ctx.needs_input_grad[5 + k]:
                grads[5 + k] = totals[start:stop]
        if e and ctx.needs_input_grad[4]:
            grads[4] = _alpha_gradient(ctx.alphas, alpha_parts, spec.alpha_indices, ctx.alpha_gate)
    else:
        d_bias = dz.view(T * N, G).sum(0)
    flat_x = dz.view(T * N, G)
    grads[3] = d_bias
    grads[2] = torch.mm(dah[1:].view((T - 1) * N, G).t(), out[:-1].view((T - 1) * N, H)) if T > 1 \
        else torch.zeros_like(w_hh)  # h_{t-1} is the output a step earlier (padding carried it)
    grads[1] = torch.mm(flat_x.t(), x_in.view(T * N, -1))
    if ctx.needs_input_grad[0]:
        grads[0] = torch.mm(flat_x, w_ih).view(T, N, -1).transpose(0, 1)
    return grads


def _fused_backward(ctx, d_out):
    """The gradients of (x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc) through the fused kernel: the
    layer's forward recomputed there (the running statistics are the forward's business, left alone)."""
    inputs, mask, spec = list(ctx.fallback[:11]), ctx.fallback[11], ctx.spec
    wanted = [k for k, tensor in enumerate(inputs) if tensor is not None and ctx.needs_input_grad[k]]
    for k in wanted:
        inputs[k] = inputs[k].detach().requires_grad_()
    with torch.enable_grad():
        out, _ = fused.train_sequence(*inputs, mask, spec)
        d_out = torch.zeros_like(out) if d_out is None else d_out
        found = torch.autograd.grad(out, [inputs[k] for k in wanted], d_out, allow_unused=True)
    grads = [None] * 11
    for k, grad in zip(wanted, found):
        grads[k] = grad if grad is not None else torch.zeros_like(inputs[k])
    if grads[4] is not None and ctx.alpha_gate is not None:  # alphas clamped to their bounds get none
        for k, index in enumerate(spec.alpha_indices):
            grads[4][index] = grads[4][index] * ctx.alpha_gate[k]
    return grads


def _alpha_gradient(alphas, alpha_parts, alpha_indices, gate):
    """d L / d alpha (A = alphas,) from the kernels' partials (T, P, E); `gate` (E,) zeroes clamped alphas."""
    values = alpha_parts.sum((0, 1))  # (E,), direction k for alpha[alpha_indices[k]]
    if gate is not None:
        values = values * gate
    if list(alpha_indices) == list(range(alphas)):  # the layer's only two domains, in order
        return values
    grad = values.new_zeros(alphas)
    for k, index in enumerate(alpha_indices):  # scalar writes: no index tensor copied from the host
        grad[index] = values[k]
    return grad


def train_sequence(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec, fallback: bool = False):
    """As `pipeline.models.fused.train_sequence`: (out (N, T, H), the batch statistics (T, d, F));
    `fallback`: a failing backward goes through the fused kernel (implementation "auto")."""
    reason = unsupported_reason(x, 1 if spec is None else len(spec.blocks), statistics=spec is not None)
    if reason is not None:
        _fallback(reason)
        return fused.train_sequence(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec)
    out, *stats = TritonRecurrentLayer.apply(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec,
                                             None, None, fallback)
    return out, stats


def train_layer(layer, x: torch.Tensor, sizes: list[int], mask: torch.Tensor | None,
                fallback: bool = False) -> torch.Tensor:
    """`RecurrentLayer._train` through these kernels: out (N, T, H), the running statistics updated;
    `fallback` as for `train_sequence`.

    The same function as `train_sequence` followed by the layer's bookkeeping, with that bookkeeping in
    the kernels: the contribution weights, their derivatives and alpha's clamp in one launch
    (`contribution_forward`), the moving averages in the step kernels. Per layer that replaces some
    250 small operators (launches on a GPU) by one launch.
    """
    if layer.normalisation == "none":
        out, _ = train_sequence(x, layer.weight_ih, layer.weight_hh, layer.bias, *(None,) * 7, mask, None,
                                fallback)
        return out
    present = [dom for dom, n in enumerate(sizes) if n > 0]
    bn_x, bn_h, bn_c = layer.norm_x, layer.norm_h, layer.norm_c
    reason = unsupported_reason(x, len(present), statistics=True)
    if reason is None and bn_x.running_mean.dtype != torch.float32:
        reason = f"running statistics in {bn_x.running_mean.dtype}, not float32"
    if reason is not None:
        _fallback(reason)
        return layer._train(x, sizes, mask, "fused")
    N = x.shape[0]
    starts = [sum(sizes[:dom]) for dom in present]
    spec = NormSpec(eps=bn_x.eps, blocks=[(start, start + sizes[dom]) for start, dom in zip(starts, present)],
                    weights=x.new_ones(1, N) if len(present) == 1 else x.new_empty(2, N))
    bn_x.record_alpha_bounds(sizes)
    alpha = gate = None
    if len(present) == 2 and bn_x.alpha is not None:  # else: one domain, plain batch normalisation
        first, second = present
        spec.alpha_indices = [alpha_index(first, second, bn_x.num_domains),
                              alpha_index(second, first, bn_x.num_domains)]
        spec.directions, spec.owners, gate = x.new_empty(2, N), [0, 1], x.new_empty(2)
        launch(kernels.contribution_forward, (1,), bn_x.alpha, bn_x.alpha_lower, spec.weights,
               spec.directions, gate, *spec.alpha_indices, N, BLOCK_N=max(16, next_power_of_2(N)),
               num_warps=4)
        alpha = bn_x.alpha
    running = Running(x=(bn_x.running_mean, bn_x.running_var), h=(bn_h.running_mean, bn_h.running_var),
                      c=(bn_c.running_mean, bn_c.running_var), domains=(present[0], present[-1]),
                      slots=bn_x.max_timesteps, momentum=bn_x.momentum)
    out, *_ = TritonRecurrentLayer.apply(x, layer.weight_ih, layer.weight_hh, layer.bias, alpha, bn_x.gamma,
                                         bn_x.beta, bn_h.gamma, bn_h.beta, bn_c.gamma, bn_c.beta, mask, spec,
                                         running, gate, fallback)
    return out


@torch.no_grad()
def evaluate_layer(x, w_ih, w_hh, bias, mask, affine: EvalAffine | None):
    """As `pipeline.models.fused.evaluate_layer`: evaluation mode from the real parameters and the
    population statistics as affine maps (`shift_gates` holding beta_x + beta_h + bias); no graph."""
    reason = unsupported_reason(x)
    if reason is not None:
        _fallback(reason)
        return fused.evaluate_layer(x, w_ih, w_hh, bias, mask, affine)
    N, T, I = x.shape
    H = w_hh.shape[1]
    G = 4 * H
    chosen = _plan(N, H, False, x.device)
    x_tm = x.transpose(0, 1).contiguous()
    mask_f = None if mask is None else mask.t().to(x.dtype).contiguous()
    out, cell = x.new_empty(T, N, H), x.new_empty(T, N, H)
    if affine is None:
        zx = torch.addmm(bias, x_tm.view(T * N, I), w_ih.t()).view(T, N, G)
        tables, rows, row_step = (out, out, out), 1, 0
    else:
        # in place: a broadcast op would take the layout of its (possibly transposed) tables
        zx = torch.mm(x_tm.view(T * N, I), w_ih.t()).view(T, N, G)
        zx.mul_(affine.scale_x).add_(affine.shift_gates)
        # one row count R for all tables (the cell's are shared by all rows even where the gates' are per row)
        rows = max(table.shape[1] for table in (affine.scale_h, affine.scale_c, affine.shift_c))
        tables = tuple(table.expand(T, rows, -1).contiguous() for table in
                       (affine.scale_h, affine.scale_c, affine.shift_c))
        row_step = 1 if rows > 1 else 0
    unused = (out,) * 18 + (1, 0, 0, 0.0)  # the training variant's statistics and moving averages
    arguments = (zx, w_hh, out, cell, out, out, out if mask_f is None else mask_f, *unused, *tables, rows,
                 row_step)
    constexprs = {"NORM": affine is not None, "TRAIN": False, "RUNNING": False, "D": 1,
                  "HAS_MASK": mask_f is not None}
    _forward_launches(chosen, T, arguments, (N, H, N, 0.0), constexprs, x.device)
    return out.transpose(0, 1)


# -- launching the recurrence -----------------------------------------------------------------------


def _plan(rows: int, hidden: int, statistics: bool, device) -> Plan:
    """`launcher.plan` for this call, warning once where the persistent kernels were asked for but the
    step kernels run."""
    from . import interpreted

    chosen = plan(rows, hidden, statistics, device, interpreted())
    if chosen.reason is not None and chosen.reason not in _warned:
        _warned.add(chosen.reason)
        warnings.warn(f"implementation='triton': {chosen.reason}; the step kernels (one launch per timestep) "
                      "run such calls", stacklevel=4)
    return chosen


def _ranges(chosen: Plan, steps: int) -> list[tuple[int, int]]:
    """The timesteps of each launch: all at once behind grid barriers, else one per launch."""
    return [(0, steps)] if chosen.sync else [(t, t + 1) for t in range(steps)]


def _barrier_arguments(chosen: Plan, device) -> tuple:
    """The persistent kernels' (arrival counters, zero, one per row block; the failure count)."""
    status = barrier_status(device)
    if not chosen.sync:
        return status, status
    counters = torch.zeros(chosen.tiles.row_blocks, dtype=torch.int32, device=device)
    return counters, status


def _forward_launches(chosen: Plan, steps: int, arguments: tuple, sizes: tuple, constexprs: dict, device):
    """The recurrence of a forward: `arguments`, from zx to the evaluation tables' row step, are those of
    `kernels.step_forward` and `persistent.sequence_forward` alike; `sizes` (N, H, split, eps)."""
    tiles = chosen.tiles
    constexprs = {**constexprs, "BLOCK_N": tiles.block_n, "BLOCK_H": tiles.block_h,
                  "PRECISION": chosen.precision, "EMULATE": chosen.emulate}
    if chosen.kernel == "persistent":
        barrier = _barrier_arguments(chosen, device)
        for start, stop in _ranges(chosen, steps):
            launch(persistent.sequence_forward, tiles.grid, start, stop, *arguments, *barrier, *sizes,
                   BLOCK_K=tiles.block_k, SYNC=chosen.sync, num_warps=tiles.num_warps, num_stages=1,
                   maxnreg=MAX_REGISTERS, **constexprs)
        return
    grid = (cdiv(sizes[1], tiles.block_h), cdiv(sizes[0], tiles.block_n))
    for t in range(steps):
        launch(kernels.step_forward, grid, t, *arguments, *sizes, BLOCK_K=tiles.block_k_forward,
               num_warps=tiles.num_warps, num_stages=tiles.num_stages, maxnreg=MAX_REGISTERS, **constexprs)


def _block_f(rows: int) -> int:
    """Columns per program of the input side's batched kernels: a tile of ~4K floats."""
    return 16 if rows > 128 else 32


def _input_warps(rows: int) -> int:
    return 4 if rows <= 64 else 8
