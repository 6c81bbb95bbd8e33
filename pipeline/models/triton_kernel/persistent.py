"""The persistent recurrent kernels: one launch per layer and direction loops over all timesteps.

`sequence_forward` and `sequence_backward` compute what `kernels.step_forward` / `step_backward` compute
at one timestep, but a launch runs a range of timesteps [t_start, t_stop) (backward: from t_stop - 1 down).
With SYNC the range is the whole sequence and the programs wait for each other after every timestep
behind a grid-wide barrier (`_grid_barrier`); without it the range is one timestep and the launch
boundary is the barrier. That second form is how the same body runs under Triton's interpreter, which
executes programs one after another (a grid barrier there would wait forever).

Work split. A program owns BLOCK_H hidden units: their 4 BLOCK_H gate columns, interleaved as
(unit, gate), so that one product W_h h_{t-1} of 16 columns or more (what `tl.dot` needs) covers all four
gates of 4 units; and, where it computes batch statistics, every row of the batch, so each statistic of
its columns is a reduction over its own registers. At H = 128 and BLOCK_H = 4 that is 32 programs, where
the step kernels have 8. Its slice of W_h (4 BLOCK_H rows, all H columns: 8 KB at H = 128) is the same in
both directions; it is read at every timestep, in BLOCK_K chunks, and stays in the SM's L1 cache (loads
marked evict_last): held in registers as a tensor-core operand it took 64 registers per thread per copy
and the kernels spilled (see `launcher.py`).

What crosses programs, through global memory behind the barrier:

* forward: h_t. Every program reads all of h_{t-1} (its rows) for its product;
* backward: dL/dh_t = dL/dh_t (output) + sum over gate columns dah_{t+1} W_h. Each program multiplies its
  own columns' dah_{t+1} by its own slice of W_h, a partial (N, H) written to a double-buffered
  workspace; after the barrier each program sums the partials of its units over all programs. The
  slice of W_h serves both directions and no program reads another's dah.

Residency: a grid barrier needs every program resident at once; the launcher keeps the grid within
the device's SM count (one program per SM assumed) and picks BLOCK_H accordingly. A barrier that waits
longer than MAX_POLLS polls (seconds) gives up, counts the failure in `status_ptr` and stops waiting for
the rest of the launch, so that a non-resident grid gives wrong numbers that the checks report instead
of a hung GPU.

Memory ordering of the barrier (the pattern of CUDA's cooperative groups): a CTA barrier so that all
threads' stores are issued; one release atomic add per program (Triton lowers a scalar atomic to one
thread); acquire loads of the counter until every program has arrived; a CTA barrier. Loads of other
programs' data use the .cg cache modifier (L2, not the SM's L1).

Legend: as `kernels.py` (N, T, H, G = 4 H, D, E, L, S, R), and

    P        column programs: cdiv(H, BLOCK_H); the grid is (P, cdiv(N, BLOCK_N))
    C        a program's gate columns, 4 BLOCK_H; tile column c is gate c % 4 of unit c // 4
    BLOCK_K  chunks of H: of the forward product's reduction, of the backward partial's columns
"""

from __future__ import annotations

import triton
import triton.language as tl

from .kernels import (
    MIN_TOTAL,
    _domain_rows,
    _dot,
    _moments,
    _norm_backward,
    _normalise,
    _product,
    _scaled_directions,
    _store_stats,
    _update_running,
)

MAX_POLLS = tl.constexpr(1 << 22)  # ~ seconds of polling L2 before a barrier gives up


@triton.jit
def _grid_barrier(counter_ptr, target, status_ptr, broken):
    """Wait until `target` arrivals are counted at counter_ptr (this program's included); returns 1 once a
    wait has timed out in this launch (later barriers then do not wait), else `broken`."""
    tl.debug_barrier()  # every thread of the program has issued its stores of this timestep
    tl.atomic_add(counter_ptr, 1, sem="release", scope="gpu")
    if broken == 0:
        seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")  # lowered to an acquire load
        polls = 0
        while (seen < target) & (polls < MAX_POLLS):
            seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")
            polls += 1
        if seen < target:
            tl.atomic_add(status_ptr, 1, sem="relaxed", scope="gpu")
            broken = 1
    tl.debug_barrier()  # no thread reads the next timestep's inputs before the wait is over
    return broken


@triton.jit
def _split_gates(x, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
    """(BLOCK_N, 4 BLOCK_H) interleaved columns -> the f, i, o, g tiles (BLOCK_N, BLOCK_H)."""
    x = tl.reshape(x, (BLOCK_N, BLOCK_H, 2, 2))  # (row, unit, gate // 2, gate % 2)
    even, odd = tl.split(x)  # gates 0 and 2; 1 and 3
    f, o = tl.split(even)
    i, g = tl.split(odd)
    return f, i, o, g


@triton.jit
def _join_gates(f, i, o, g, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
    """The inverse of `_split_gates`."""
    return tl.reshape(tl.join(tl.join(f, o), tl.join(i, g)), (BLOCK_N, 4 * BLOCK_H))


@triton.jit
def _columns(H, BLOCK_H: tl.constexpr):
    """This program's units (BLOCK_H,); per tile column its gate column in G (C,), and whether it is real."""
    first = tl.program_id(0) * BLOCK_H
    c = tl.arange(0, 4 * BLOCK_H)
    return first + tl.arange(0, BLOCK_H), (c % 4) * H + first + c // 4, first + c // 4 < H


# integers only compared, never in addresses, are not specialised (divisible by 16 or not): the self-check
# at a few timesteps and equal domains compiles the variant a call with T = 200 and unequal domains runs
@triton.jit(do_not_specialize=["t_start", "t_stop", "split"])
def sequence_forward(
    t_start, t_stop,  # the timesteps of this launch: [0, T) with SYNC, one without
    zx_ptr,  # (T, N, G) the input side of the gate pre-activations, constant terms included
    w_hh_ptr,  # (G, H) recurrent weights
    out_ptr,  # (T, N, H) out: h_t; h_{t-1} is read from it (zero at t = 0)
    cell_ptr,  # (T, N, H) out: c_t (the state, before the cell normaliser); c_{t-1} likewise
    gates_ptr,  # (T, N, G) out if TRAIN: sigmoid(f), sigmoid(i), sigmoid(o), tanh(g)
    tanh_ptr,  # (T, N, H) out if TRAIN: tanh of the normalised cell state
    mask_ptr,  # (T, N) float, 1 for real frames (read if HAS_MASK)
    ah_ptr,  # (T, N, G) out if NORM and TRAIN: W_h h_{t-1}
    weight_ptr,  # (D, N) contribution weights (NORM and TRAIN)
    gamma_h_ptr,  # (G,) the hidden side's gamma (NORM and TRAIN)
    mean_h_ptr, var_h_ptr,  # (T, D, G) out (NORM and TRAIN)
    gamma_c_ptr, beta_c_ptr,  # (H,) the cell normaliser's (NORM and TRAIN)
    mean_c_ptr, var_c_ptr,  # (T, 1, H) out (NORM and TRAIN)
    run_x_mean_ptr, run_x_var_ptr,  # (L, S, G) in/out (RUNNING): the input side's running statistics
    run_h_mean_ptr, run_h_var_ptr,  # (L, S, G) in/out (RUNNING): the hidden side's
    run_c_mean_ptr, run_c_var_ptr,  # (1, S, H) in/out (RUNNING): the cell state's
    mean_x_ptr, var_x_ptr,  # (T, D, G) this batch's input-side statistics, of the centred input (RUNNING)
    shift_x_ptr,  # (G,) W_x times the centre taken off the input (RUNNING)
    slots, domain0, domain1, momentum,  # S; the layer's domain of each present domain; the averages' rate
    scale_h_ptr,  # (T, R, G) population statistics as a scale (NORM, not TRAIN)
    scale_c_ptr, shift_c_ptr,  # (T, R, H) likewise for the cell state
    table_rows, table_row_step,  # R, and 0 (one table row for all) or 1 (one per row)
    sync_ptr,  # (cdiv(N, BLOCK_N),) int32, zero at launch (SYNC): each row block's arrival counter
    status_ptr,  # (1,) int32 (SYNC): barriers that gave up waiting, accumulated over launches
    N, H, split, eps,  # split: the first row of the second domain (N with one); eps of the normalisers
    NORM: tl.constexpr, TRAIN: tl.constexpr, RUNNING: tl.constexpr, D: tl.constexpr, HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    EMULATE: tl.constexpr, SYNC: tl.constexpr,
):
    # grid (P, cdiv(N, BLOCK_N)); with NORM and TRAIN one program row holds all N.
    # RUNNING: the moving averages are updated in timestep order (past the S slots all share the last).
    G = 4 * H
    units, cols, col_ok = _columns(H, BLOCK_H)
    unit_ok = units < H
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    tile_ok = row_ok[:, None] & col_ok[None, :]
    state = rows[:, None] * H + units[None, :]
    state_ok = row_ok[:, None] & unit_ok[None, :]
    # sigmoid for f, i, o; tanh(z) = 2 sigmoid(2 z) - 1 for g: one transcendental for the whole tile
    slope = tl.where(tl.arange(0, 4 * BLOCK_H) % 4 == 3, 2.0, 1.0)[None, :]
    if NORM and TRAIN:
        gamma_h = tl.load(gamma_h_ptr + cols, mask=col_ok, other=0.0)
        gamma_c = tl.load(gamma_c_ptr + units, mask=unit_ok, other=0.0)
        beta_c = tl.load(beta_c_ptr + units, mask=unit_ok, other=0.0)
        if RUNNING:
            shift_x = tl.load(shift_x_ptr + cols, mask=col_ok, other=0.0)
    broken = 0
    for t in tl.range(t_start, t_stop, num_stages=1):  # never pipelined: h_t is read after the barrier
        prev_ok = row_ok & (t > 0)
        mask_row = row_ok.to(tl.float32)
        if HAS_MASK:
            mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
        h_prev_ptr = out_ptr + (t - 1) * N * H
        # (BLOCK_N, C): W_h h_{t-1} for this program's columns, h_{t-1} read past L1 (other programs wrote it)
        a = _product(h_prev_ptr, prev_ok, rows, H, w_hh_ptr, 1, H, cols, col_ok, BLOCK_N, 4 * BLOCK_H,
                     BLOCK_K, PRECISION, EMULATE, True)
        offsets = t * N * G + rows[:, None] * G + cols[None, :]
        if NORM:
            if TRAIN:
                tl.store(ah_ptr + offsets, a, mask=tile_ok)
                wn0, _, wn1, _, first, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split, D)
                a, mean0, var0, mean1, var1 = _normalise(a, wn0, wn1, second, gamma_h, eps, D)
                _store_stats(mean_h_ptr, var_h_ptr, t, cols, col_ok, G, mean0, var0, mean1, var1, D)
                if RUNNING:  # a domain without a real row at t leaves its averages alone
                    slot = tl.minimum(t, slots - 1)
                    rate0 = momentum * (tl.sum(tl.where(first, mask_row, 0.0), axis=0) > 0).to(tl.float32)
                    rate1 = momentum * (tl.sum(tl.where(second, mask_row, 0.0), axis=0) > 0).to(tl.float32)
                    _update_running(run_h_mean_ptr, run_h_var_ptr, domain0, slot, slots, G, cols, col_ok,
                                    mean0, var0, rate0)
                    if D == 2:
                        _update_running(run_h_mean_ptr, run_h_var_ptr, domain1, slot, slots, G, cols, col_ok,
                                        mean1, var1, rate1)
                    for p in tl.static_range(D):
                        stats = (t * D + p) * G + cols
                        mean_x = tl.load(mean_x_ptr + stats, mask=col_ok, other=0.0) + shift_x
                        var_x = tl.load(var_x_ptr + stats, mask=col_ok, other=0.0)
                        _update_running(run_x_mean_ptr, run_x_var_ptr, domain0 if p == 0 else domain1, slot,
                                        slots, G, cols, col_ok, mean_x, var_x, rate0 if p == 0 else rate1)
            else:
                table = (t * table_rows + rows[:, None] * table_row_step) * G + cols[None, :]
                a = a * tl.load(scale_h_ptr + table, mask=tile_ok, other=0.0)
        z = a + tl.load(zx_ptr + offsets, mask=tile_ok, other=0.0)
        act = slope * tl.sigmoid(slope * z) - (slope - 1.0)
        if TRAIN:
            tl.store(gates_ptr + offsets, act, mask=tile_ok)
        forget, inp, out_gate, candidate = _split_gates(act, BLOCK_N, BLOCK_H)
        c_prev = tl.load(cell_ptr + (t - 1) * N * H + state, mask=prev_ok[:, None] & unit_ok[None, :],
                         other=0.0)
        c = forget * c_prev + inp * candidate
        u = c
        if NORM:
            if TRAIN:  # plain BN over every real row: the cell state's normaliser ignores the domains
                weights = mask_row / tl.maximum(tl.sum(mask_row, axis=0), MIN_TOTAL)
                mean_c, var_c = _moments(c, weights)
                u = (c - mean_c[None, :]) * (gamma_c * tl.rsqrt(var_c + eps))[None, :] + beta_c[None, :]
                tl.store(mean_c_ptr + t * H + units, mean_c, mask=unit_ok)
                tl.store(var_c_ptr + t * H + units, var_c, mask=unit_ok)
                if RUNNING:
                    rate_c = momentum * (tl.sum(mask_row, axis=0) > 0).to(tl.float32)
                    _update_running(run_c_mean_ptr, run_c_var_ptr, 0, slot, slots, H, units, unit_ok, mean_c,
                                    var_c, rate_c)
            else:
                table = (t * table_rows + rows[:, None] * table_row_step) * H + units[None, :]
                u = c * tl.load(scale_c_ptr + table, mask=state_ok, other=0.0)
                u += tl.load(shift_c_ptr + table, mask=state_ok, other=0.0)
        tanh_u = 2.0 * tl.sigmoid(2.0 * u) - 1.0
        h = out_gate * tanh_u
        if TRAIN:
            tl.store(tanh_ptr + t * N * H + state, tanh_u, mask=state_ok)
        if HAS_MASK:  # a padded frame carries the state through unchanged
            keep = (mask_row > 0)[:, None]
            h_prev = tl.load(h_prev_ptr + state, mask=prev_ok[:, None] & unit_ok[None, :], other=0.0)
            h = tl.where(keep, h, h_prev)
            c = tl.where(keep, c, c_prev)
        tl.store(out_ptr + t * N * H + state, h, mask=state_ok)
        tl.store(cell_ptr + t * N * H + state, c, mask=state_ok)
        if SYNC:
            broken = _grid_barrier(sync_ptr + tl.program_id(1), tl.num_programs(0) * (t - t_start + 1),
                                   status_ptr, broken)


@triton.jit(do_not_specialize=["t_start", "t_stop", "T", "split"])
def sequence_backward(
    t_start, t_stop, T,  # this launch's timesteps, run from t_stop - 1 down to t_start; T of the sequence
    d_out_ptr,  # (T, N, H) dL/dh_t from the layer's output
    w_hh_ptr,  # (G, H) recurrent weights
    gates_ptr,  # (T, N, G) the forward's activations
    tanh_ptr,  # (T, N, H) the forward's tanh of the normalised cell state
    cell_ptr,  # (T, N, H) the forward's c_t
    mask_ptr,  # (T, N) float (read if HAS_MASK)
    dh_carry_ptr,  # (N, H) in/out (HAS_MASK): dL/dh_t that came through padded frames after t
    dc_carry_ptr,  # (N, H) in/out: dL/dc_t from step t + 1 (ignored at t = T - 1)
    partial_ptr,  # (2, P, N, H) in/out: each program's dah_t W_h over its columns, by the parity of t
    dz_ptr,  # (T, N, G) out: dL/dz_t of the gate pre-activations (the input side's gradient too)
    dah_ptr,  # (T, N, G) out if NORM: dL/d(W_h h_{t-1})
    ah_ptr,  # (T, N, G) the forward's W_h h_{t-1} (NORM)
    weight_ptr,  # (D, N) contribution weights (NORM)
    direction_ptr,  # (E, N) d weights[k] / d alpha_k (E > 0)
    gamma_h_ptr,  # (G,) (NORM)
    mean_h_ptr, var_h_ptr,  # (T, D, G) the forward's hidden-side statistics (NORM)
    gamma_c_ptr,  # (H,) (NORM)
    mean_c_ptr, var_c_ptr,  # (T, 1, H) the forward's cell statistics (NORM)
    dgamma_h_ptr,  # (T, G) out (NORM), row stride sums_stride: sum over rows of dz x_hat of the hidden side
    dgamma_c_ptr, dbeta_c_ptr,  # (T, H) out (NORM), likewise: the cell normaliser's gamma and beta
    dalpha_ptr,  # (T, P, E) out (E > 0), row stride alpha_stride: alpha partials of each program
    sums_stride, alpha_stride,
    sync_ptr, status_ptr,  # as for `sequence_forward`
    N, H, split, eps,  # as for `sequence_forward`
    NORM: tl.constexpr, D: tl.constexpr, E: tl.constexpr, HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_Q: tl.constexpr,
    PRECISION: tl.constexpr, EMULATE: tl.constexpr, SYNC: tl.constexpr,
):
    # grid (P, cdiv(N, BLOCK_N)), the forward's programs; BLOCK_Q: programs' partials summed per load
    G = 4 * H
    P = tl.num_programs(0)
    block = tl.program_id(0)
    units, cols, col_ok = _columns(H, BLOCK_H)
    unit_ok = units < H
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    tile_ok = row_ok[:, None] & col_ok[None, :]
    state = rows[:, None] * H + units[None, :]
    state_ok = row_ok[:, None] & unit_ok[None, :]
    q = tl.arange(0, BLOCK_Q)
    if NORM:
        gamma_h = tl.load(gamma_h_ptr + cols, mask=col_ok, other=0.0)
        gamma_c = tl.load(gamma_c_ptr + units, mask=unit_ok, other=0.0)
    broken = 0
    for j in tl.range(0, t_stop - t_start, num_stages=1):
        t = t_stop - 1 - j
        next_ok = row_ok & (t + 1 < T)
        next_tile = next_ok[:, None] & unit_ok[None, :]
        mask_row = row_ok.to(tl.float32)
        if HAS_MASK:
            mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
        # dL/dh_t: from the output, and from step t + 1 through W_h (the programs' partials)
        dh = tl.load(d_out_ptr + t * N * H + state, mask=state_ok, other=0.0)
        if t + 1 < T:
            base = partial_ptr + ((t + 1) % 2) * P * N * H
            for q0 in range(0, P, BLOCK_Q):
                qs = q0 + q
                parts = tl.load(base + qs[:, None, None] * N * H + state[None, :, :],
                                mask=(qs < P)[:, None, None] & state_ok[None, :, :], other=0.0,
                                cache_modifier=".cg")
                dh += tl.sum(parts, axis=0)
        keep = (mask_row > 0)[:, None]
        if HAS_MASK:  # a padded frame's h_t is h_{t-1}: its gradient passes on to step t - 1 untouched
            dh += tl.load(dh_carry_ptr + state, mask=next_tile, other=0.0)
            dh_pass = tl.where(keep, 0.0, dh)
            dh = tl.where(keep, dh, 0.0)
        gate_offsets = t * N * G + rows[:, None] * G + cols[None, :]
        acts = tl.load(gates_ptr + gate_offsets, mask=tile_ok, other=0.0)
        forget, inp, out_gate, candidate = _split_gates(acts, BLOCK_N, BLOCK_H)
        tanh_u = tl.load(tanh_ptr + t * N * H + state, mask=state_ok, other=0.0)
        du = dh * out_gate * (1.0 - tanh_u * tanh_u)
        dc = tl.load(dc_carry_ptr + state, mask=next_tile, other=0.0)
        if NORM:  # the cell normaliser: one domain, weights 1 on real rows
            c = tl.load(cell_ptr + t * N * H + state, mask=state_ok, other=0.0)
            weights = mask_row / tl.maximum(tl.sum(mask_row, axis=0), MIN_TOTAL)
            dcn, dgamma_c, dbeta_c, _, _ = _norm_backward(du, c, mean_c_ptr, var_c_ptr, t, units, unit_ok, H,
                                                          weights, weights, row_ok, row_ok, weights, weights,
                                                          gamma_c, eps, 1, 0)
            tl.store(dgamma_c_ptr + t * sums_stride + units, dgamma_c, mask=unit_ok)
            tl.store(dbeta_c_ptr + t * sums_stride + units, dbeta_c, mask=unit_ok)
            dc += dcn
        else:
            dc += du
        if HAS_MASK:  # likewise c_t of a padded frame is c_{t-1}
            dc_pass = tl.where(keep, 0.0, dc)
            dc = tl.where(keep, dc, 0.0)
        prev_ok = row_ok & (t > 0)
        c_prev = tl.load(cell_ptr + (t - 1) * N * H + state, mask=prev_ok[:, None] & unit_ok[None, :],
                         other=0.0)
        dc_prev = dc * forget
        if HAS_MASK:
            dc_prev += dc_pass
            tl.store(dh_carry_ptr + state, dh_pass, mask=state_ok)
        tl.store(dc_carry_ptr + state, dc_prev, mask=state_ok)

        dz = _join_gates(dc * c_prev * forget * (1.0 - forget), dc * candidate * inp * (1.0 - inp),
                         dh * tanh_u * out_gate * (1.0 - out_gate), dc * inp * (1.0 - candidate * candidate),
                         BLOCK_N, BLOCK_H)
        tl.store(dz_ptr + gate_offsets, dz, mask=tile_ok)
        dah = dz
        if NORM:
            wn0, total0, wn1, total1, first, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N,
                                                                   split, D)
            jm0, jm1 = _scaled_directions(direction_ptr, mask_row, rows, row_ok, N, total0, total1, E)
            a = tl.load(ah_ptr + gate_offsets, mask=tile_ok, other=0.0)
            dah, dgamma, _, alpha0, alpha1 = _norm_backward(dz, a, mean_h_ptr, var_h_ptr, t, cols, col_ok, G,
                                                            wn0, wn1, first, second, jm0, jm1, gamma_h, eps,
                                                            D, E)
            tl.store(dah_ptr + gate_offsets, dah, mask=tile_ok)
            tl.store(dgamma_h_ptr + t * sums_stride + cols, dgamma, mask=col_ok)
            if E > 0:
                partial = t * alpha_stride + block * E
                tl.store(dalpha_ptr + partial, alpha0)
                tl.store(dalpha_ptr + partial + 1, alpha1)
        # this program's share of dL/dh_{t-1}: its columns' dah_t times its rows of W_h
        if t > 0:
            base = partial_ptr + ((t % 2) * P + block) * N * H
            for k0 in range(0, H, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                k_ok = k < H
                w = tl.load(w_hh_ptr + cols[:, None] * H + k[None, :], mask=col_ok[:, None] & k_ok[None, :],
                            other=0.0, eviction_policy="evict_last")
                share = _dot(dah, w, tl.zeros((BLOCK_N, BLOCK_K), tl.float32), PRECISION, EMULATE)
                tl.store(base + rows[:, None] * H + k[None, :], share, mask=row_ok[:, None] & k_ok[None, :])
        if SYNC:
            broken = _grid_barrier(sync_ptr + tl.program_id(1), P * (j + 1), status_ptr, broken)
