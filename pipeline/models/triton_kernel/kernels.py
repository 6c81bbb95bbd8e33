"""The Triton kernels of one LSTM / BNLSTM / DDLSTM layer (launched through `launcher.py` by `function.py`).

Five kernels, and the device helpers `persistent.py` shares. One computes two domains' contribution
weights (`contribution_forward`). Two are batched over all timesteps (what does not depend on the
recurrence): the input side's normaliser forward (`input_norm_forward`) and backward
(`input_norm_backward`). Two run once per timestep, the step kernels: `step_forward` and `step_backward`
(the persistent kernels of `persistent.py` loop over the timesteps instead; these are their fallback).
A step program owns a block of hidden units (their four gate columns) and, when it
computes batch statistics, every row of the batch, so each statistic of its columns is a reduction over
its own registers: no second kernel, no atomics. Training and evaluation, with or without normalisers,
are one template each way, specialised by constexprs (NORM, TRAIN, D, E, HAS_MASK). The cell's maths is
in `pipeline/models/layers.py`; the normalisers' in `pipeline/models/ddbn.py` and `contribution.py`.

Legend of dimension names (every pointer argument below says its shape with them):

    N        rows of the batch; a program holds BLOCK_N of them (a power of two >= 16)
    T        timesteps
    H        hidden units; a step program owns BLOCK_H of them
    G        4 H gate pre-activations, order f, i, o, g: column g * H + u is gate g of unit u
    D        domains present in the batch (1 or 2): rows [0, split) and [split, N), each row
             normalised with its own domain's statistics
    E        weight derivatives for alpha's gradient: 0, or 2 with D = 2 (direction k moves the
             weights of domain k)
    F        columns of a normaliser's input; a batched program owns BLOCK_F of them
    K        reduction dimension of a product, read in chunks of BLOCK_K
    P        programs along the columns of one timestep (for per-(timestep, program) partial sums)
    R        rows of an evaluation table: 1 (every row from one domain) or N (per-row domains)
    L, S     the layer's domains and timestep slots of its running statistics (L, S, F)

Statistics are two-pass (mean, then the weighted squares of the deviations), never E[a^2] - E[a]^2.
Every sum over time or over programs is written as a partial per (timestep, program) and reduced by
the caller after the loop, so the results do not depend on scheduling.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..contribution import MIN_TOTAL_WEIGHT

MIN_TOTAL = tl.constexpr(MIN_TOTAL_WEIGHT)  # a domain without rows at a timestep divides by this


# -- device helpers ---------------------------------------------------------------------------------


@triton.jit
def _tanh(x):
    # tl has no tanh; through exp(-2|x|) it cannot overflow, and its absolute error is float32's
    e = tl.exp(-2.0 * tl.abs(x))
    y = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, y, -y)


@triton.jit
def _row_weights(weight_ptr, mask_row, dom, rows, row_ok, N):
    """Domain `dom`'s weights of the rows (BLOCK_N,), padding masked, divided by their total S; and S."""
    w = tl.load(weight_ptr + dom * N + rows, mask=row_ok, other=0.0) * mask_row
    total = tl.maximum(tl.sum(w, axis=0), MIN_TOTAL)
    return w / total, total


@triton.jit
def _moments(a, wn):
    """Weighted mean and (biased) variance over rows of a (BLOCK_N, BLOCK_F), weights wn summing to 1."""
    mean = tl.sum(wn[:, None] * a, axis=0)
    centred = a - mean[None, :]
    return mean, tl.sum(wn[:, None] * centred * centred, axis=0)


@triton.jit
def _per_row(second, v0, v1, D: tl.constexpr):
    """A per-domain row vector (BLOCK_F,) spread to the rows: each row gets its own domain's."""
    out = v0[None, :]
    if D == 2:
        out = tl.where(second[:, None], v1[None, :], v0[None, :])
    return out


@triton.jit
def _normalise(a, wn0, wn1, second, gamma, eps, D: tl.constexpr):
    """gamma x_hat of a (BLOCK_N, BLOCK_F) tile with its domains' statistics, and those (mean, var)."""
    mean0, var0 = _moments(a, wn0)
    mean1, var1 = mean0, var0
    if D == 2:
        mean1, var1 = _moments(a, wn1)
    mean = _per_row(second, mean0, mean1, D)
    rstd = _per_row(second, tl.rsqrt(var0 + eps), tl.rsqrt(var1 + eps), D)
    return (a - mean) * rstd * gamma[None, :], mean0, var0, mean1, var1


@triton.jit
def _store_stats(mean_ptr, var_ptr, t, cols, col_ok, F, mean0, var0, mean1, var1, D: tl.constexpr):
    # mean_ptr, var_ptr (T, D, F)
    base = t * D * F
    tl.store(mean_ptr + base + cols, mean0, mask=col_ok)
    tl.store(var_ptr + base + cols, var0, mask=col_ok)
    if D == 2:
        tl.store(mean_ptr + base + F + cols, mean1, mask=col_ok)
        tl.store(var_ptr + base + F + cols, var1, mask=col_ok)


@triton.jit
def _domain_backward(dy, a, mean, var, wn, own, jm, gamma, eps, E: tl.constexpr):
    """One domain's share of the weighted normaliser's backward for a (BLOCK_N, BLOCK_F) tile.

    `own` (BLOCK_N,) marks the rows normalised with this domain's statistics, `wn` the rows' weights
    in them (divided by their total S), `jm` one alpha's weight derivative divided by S. Returns
    (the statistics' part of da, sum dy x_hat, sum dy over own rows, alpha's partial). With
    d mean / d w_j = (a_j - mean) / S and d var / d w_j = ((a_j - mean)^2 - var) / S, alpha's
    gradient is sum_j J_j / S (dL/dmean (a_j - mean) + dL/dvar ((a_j - mean)^2 - var)).
    """
    rstd = tl.rsqrt(var + eps)
    centred = a - mean[None, :]
    dy_own = tl.where(own[:, None], dy, 0.0)
    sum_dy = tl.sum(dy_own, axis=0)
    sum_dy_centred = tl.sum(dy_own * centred, axis=0)
    grad_mean = -gamma * rstd * sum_dy
    grad_var = -0.5 * gamma * rstd * rstd * rstd * sum_dy_centred
    da = wn[:, None] * (grad_mean[None, :] + 2.0 * grad_var[None, :] * centred)
    alpha = 0.0
    if E > 0:
        alpha = tl.sum(jm[:, None] * (grad_mean[None, :] * centred
                                      + grad_var[None, :] * (centred * centred - var[None, :])))
    return da, sum_dy_centred * rstd, sum_dy, alpha


@triton.jit
def _norm_backward(dy, a, mean_ptr, var_ptr, t, cols, col_ok, F, wn0, wn1, first, second, jm0, jm1, gamma,
                   eps, D: tl.constexpr, E: tl.constexpr):
    """Backward of `_normalise` (gamma x_hat) for dy (BLOCK_N, BLOCK_F): (da, sum dy x_hat, sum dy,
    alpha partials of directions 0 and 1); statistics read from mean_ptr, var_ptr (T, D, F)."""
    base = t * D * F
    mean0 = tl.load(mean_ptr + base + cols, mask=col_ok, other=0.0)
    var0 = tl.load(var_ptr + base + cols, mask=col_ok, other=1.0)
    da, dy_xhat, sum_dy, alpha0 = _domain_backward(dy, a, mean0, var0, wn0, first, jm0, gamma, eps, E)
    scale = (gamma * tl.rsqrt(var0 + eps))[None, :]
    alpha1 = 0.0
    if D == 2:
        mean1 = tl.load(mean_ptr + base + F + cols, mask=col_ok, other=0.0)
        var1 = tl.load(var_ptr + base + F + cols, mask=col_ok, other=1.0)
        da1, dy_xhat1, sum_dy1, alpha1 = _domain_backward(dy, a, mean1, var1, wn1, second, jm1, gamma, eps, E)
        da += da1
        dy_xhat += dy_xhat1
        sum_dy += sum_dy1
        scale = tl.where(second[:, None], (gamma * tl.rsqrt(var1 + eps))[None, :], scale)
    return da + dy * scale, dy_xhat, sum_dy, alpha0, alpha1


@triton.jit
def _tf32(x, TRUNCATE: tl.constexpr):
    """float32 values with their mantissa cut to TF32's 10 bits: truncated (what a tensor core does with
    the low 13 bits of a float32 operand) or rounded to nearest, ties away (`cvt.rna.tf32.f32`)."""
    bits = x.to(tl.uint32, bitcast=True)
    if not TRUNCATE:
        bits += 0x1000
    return (bits & 0xFFFFE000).to(tl.float32, bitcast=True)


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr, EMULATE: tl.constexpr):
    """acc + a @ b in float32, the products at PRECISION: "ieee", "tf32", or "tf32x3" (three TF32
    products of the operands split as big + small, error-compensated).

    EMULATE (under the interpreter, whose dot ignores the precision): the operands rounded here as Triton's
    NVIDIA backend feeds them to the tensor cores (tf32: as they are, the hardware ignores their low 13
    bits; tf32x3: big and small both rounded to nearest), so that the interpreter shows the accuracy a GPU
    would give."""
    if EMULATE and PRECISION == "tf32":
        acc = tl.dot(_tf32(a, True), _tf32(b, True), acc=acc, input_precision="ieee")
    elif EMULATE and PRECISION == "tf32x3":
        a_big = _tf32(a, False)
        b_big = _tf32(b, False)
        small = tl.dot(_tf32(a - a_big, False), b_big, input_precision="ieee")
        small = tl.dot(a_big, _tf32(b - b_big, False), acc=small, input_precision="ieee")
        acc = tl.dot(a_big, b_big, acc=acc + small, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc=acc, input_precision=PRECISION)
    return acc


@triton.jit
def _product(src_ptr, src_ok, rows, K, w_ptr, w_k_stride, w_c_stride, cols, col_ok, BLOCK_N: tl.constexpr,
             BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, EMULATE: tl.constexpr,
             SHARED: tl.constexpr = False):
    """(BLOCK_N, BLOCK_C) = src[rows, :K] @ W[:K, cols], src row-major (., K), W[k, c] at
    w_ptr + k w_k_stride + c w_c_stride; rows with src_ok False read as zero. SHARED: src was written by
    other programs of the same launch (read from L2, past the SM's L1)."""
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < K
        a = tl.load(src_ptr + rows[:, None] * K + k[None, :], mask=src_ok[:, None] & k_ok[None, :], other=0.0,
                    cache_modifier=".cg" if SHARED else "")
        b = tl.load(w_ptr + k[:, None] * w_k_stride + cols[None, :] * w_c_stride,
                    mask=k_ok[:, None] & col_ok[None, :], other=0.0, eviction_policy="evict_last")
        acc = _dot(a, b, acc, PRECISION, EMULATE)
    return acc


@triton.jit
def _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split, D: tl.constexpr):
    """Per-row weights of each domain (divided by the totals), the totals, and the block membership."""
    wn0, total0 = _row_weights(weight_ptr, mask_row, 0, rows, row_ok, N)
    wn1, total1 = wn0, total0
    if D == 2:
        wn1, total1 = _row_weights(weight_ptr, mask_row, 1, rows, row_ok, N)
    second = rows >= split
    return wn0, total0, wn1, total1, row_ok & (rows < split), second & row_ok


@triton.jit
def _scaled_directions(direction_ptr, mask_row, rows, row_ok, N, total0, total1, E: tl.constexpr):
    """Alpha's weight derivatives (E, N) at the rows, padding masked, divided by their domain's total."""
    jm0 = mask_row
    jm1 = mask_row
    if E > 0:
        jm0 = tl.load(direction_ptr + rows, mask=row_ok, other=0.0) * mask_row / total0
        jm1 = tl.load(direction_ptr + N + rows, mask=row_ok, other=0.0) * mask_row / total1
    return jm0, jm1


@triton.jit
def _update_running(mean_ptr, var_ptr, domain, slot, slots, F, cols, col_ok, mean, var, rate):
    """Moving averages (L, S, F) at (domain, slot) towards this batch's (mean, var) (BLOCK_F,): by `rate`, the
    momentum, or 0 where the domain had no real row (as `ddbn.update_running_sequence`)."""
    offsets = (domain * slots + slot) * F + cols
    old_mean = tl.load(mean_ptr + offsets, mask=col_ok, other=0.0)
    old_var = tl.load(var_ptr + offsets, mask=col_ok, other=0.0)
    tl.store(mean_ptr + offsets, old_mean + (mean - old_mean) * rate, mask=col_ok)
    tl.store(var_ptr + offsets, old_var + (var - old_var) * rate, mask=col_ok)


# -- the contribution weights of two domains --------------------------------------------------------


@triton.jit
def contribution_forward(
    alpha_ptr,  # (A,) the layer's alphas, A = L (L - 1) for its L domains
    lower_ptr,  # (A,) their lower bounds for this batch's composition (`DDBN.alpha_lower`)
    weight_ptr,  # (2, N) out: each present domain's contribution weights of the rows (paper eq. 5-6)
    direction_ptr,  # (2, N) out: d weights[k] / d alpha_k
    inside_ptr,  # (2,) out: 1 where alpha_k lies within its bounds (its gradient passes), 0 where clamped
    index0, index1,  # where alpha_{first, second} and alpha_{second, first} are in alpha_ptr
    N,  # rows: the two domains' blocks together
    BLOCK_N: tl.constexpr,
):
    # grid (1,): `contribution.contribution_weights` and `contribution_directions` for two present
    # domains, with `DDBN.effective_alpha`'s clamp, in one launch instead of a few hundred small ops
    rows = tl.arange(0, BLOCK_N)
    row_ok = rows < N
    j = rows.to(tl.float32)
    for k in tl.static_range(2):
        index = index0 if k == 0 else index1
        alpha = tl.load(alpha_ptr + index)
        lower = tl.load(lower_ptr + index)
        clamped = tl.minimum(tl.maximum(alpha, lower), 1.0)
        if k == 0:  # (1 - tanh(j - alpha_1 N)) / 2
            edge = _tanh(j - clamped * N)
            weight = (1.0 - edge) * 0.5
        else:  # (1 + tanh(j - (1 - alpha_2) N)) / 2
            edge = _tanh(j - (1.0 - clamped) * N)
            weight = (1.0 + edge) * 0.5
        tl.store(weight_ptr + k * N + rows, weight, mask=row_ok)
        tl.store(direction_ptr + k * N + rows, N * 0.5 * (1.0 - edge * edge), mask=row_ok)
        tl.store(inside_ptr + k, ((alpha >= lower) & (alpha <= 1.0)).to(tl.float32))


# -- the input side, batched over timesteps ---------------------------------------------------------


@triton.jit
def input_norm_forward(
    ax_ptr,  # (T, N, G) W_x x_t, x centred by its mean over real frames
    weight_ptr,  # (D, N) each domain's contribution weights of the rows, before the padding mask
    mask_ptr,  # (T, N) float, 1 for real frames (read if HAS_MASK)
    gamma_ptr,  # (G,) the input side's gamma
    beta_x_ptr, beta_h_ptr, bias_ptr,  # (G,) each: the constant terms of the gate pre-activations
    zx_ptr,  # (T, N, G) out: gamma x_hat + beta_x + beta_h + bias
    mean_ptr, var_ptr,  # (T, D, G) out: each domain's weighted batch statistics
    N, G, split, eps,  # split: the first row of the second domain
    D: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr,
):
    # grid (T, cdiv(G, BLOCK_F)): every row of BLOCK_F columns at one timestep
    t = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    rows = tl.arange(0, BLOCK_N)
    row_ok, col_ok = rows < N, cols < G
    tile_ok = row_ok[:, None] & col_ok[None, :]
    mask_row = row_ok.to(tl.float32)
    if HAS_MASK:
        mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
    wn0, _, wn1, _, _, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split, D)
    offsets = t * N * G + rows[:, None] * G + cols[None, :]
    a = tl.load(ax_ptr + offsets, mask=tile_ok, other=0.0)
    gamma = tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
    y, mean0, var0, mean1, var1 = _normalise(a, wn0, wn1, second, gamma, eps, D)
    shift = tl.load(beta_x_ptr + cols, mask=col_ok, other=0.0)
    shift += tl.load(beta_h_ptr + cols, mask=col_ok, other=0.0)
    shift += tl.load(bias_ptr + cols, mask=col_ok, other=0.0)
    tl.store(zx_ptr + offsets, y + shift[None, :], mask=tile_ok)
    _store_stats(mean_ptr, var_ptr, t, cols, col_ok, G, mean0, var0, mean1, var1, D)


@triton.jit
def input_norm_backward(
    dz_ptr,  # (T, N, G) in: dL/dz, the gate pre-activations' gradient; out, in place: dL/d(W_x x_t)
    ax_ptr,  # (T, N, G) the forward's W_x x_t (centred x)
    mean_ptr, var_ptr,  # (T, D, G) the forward's statistics
    weight_ptr,  # (D, N) contribution weights
    direction_ptr,  # (E, N) d weights[k] / d alpha_k (read if E > 0)
    mask_ptr,  # (T, N) float (read if HAS_MASK)
    gamma_ptr,  # (G,)
    dgamma_ptr, dbeta_ptr,  # (T, G) out, row stride sums_stride: sums over rows of dz x_hat, of dz
    dalpha_ptr,  # (T, P, E) out, row stride alpha_stride: each program's alpha partials, P = cdiv(G, BLOCK_F)
    sums_stride, alpha_stride,
    N, G, split, eps,  # as for `input_norm_forward`
    D: tl.constexpr, E: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr,
):
    # grid (T, P): the program of `input_norm_forward` for the same columns; in place is safe because
    # a program reads every row of its columns before it writes them
    t = tl.program_id(0)
    block = tl.program_id(1)
    cols = block * BLOCK_F + tl.arange(0, BLOCK_F)
    rows = tl.arange(0, BLOCK_N)
    row_ok, col_ok = rows < N, cols < G
    tile_ok = row_ok[:, None] & col_ok[None, :]
    mask_row = row_ok.to(tl.float32)
    if HAS_MASK:
        mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
    wn0, total0, wn1, total1, first, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split, D)
    jm0, jm1 = _scaled_directions(direction_ptr, mask_row, rows, row_ok, N, total0, total1, E)
    offsets = t * N * G + rows[:, None] * G + cols[None, :]
    dz = tl.load(dz_ptr + offsets, mask=tile_ok, other=0.0)
    a = tl.load(ax_ptr + offsets, mask=tile_ok, other=0.0)
    gamma = tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
    da, dy_xhat, sum_dy, alpha0, alpha1 = _norm_backward(dz, a, mean_ptr, var_ptr, t, cols, col_ok, G, wn0,
                                                         wn1, first, second, jm0, jm1, gamma, eps, D, E)
    tl.store(dz_ptr + offsets, da, mask=tile_ok)
    tl.store(dgamma_ptr + t * sums_stride + cols, dy_xhat, mask=col_ok)
    tl.store(dbeta_ptr + t * sums_stride + cols, sum_dy, mask=col_ok)
    if E > 0:
        partial = t * alpha_stride + block * E
        tl.store(dalpha_ptr + partial, alpha0)
        tl.store(dalpha_ptr + partial + 1, alpha1)


# -- one timestep of the recurrence -----------------------------------------------------------------


@triton.jit(do_not_specialize=["t"])
def step_forward(
    t,  # the timestep
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
    shift_x_ptr,  # (G,) W_x times the centre taken off the input (RUNNING): the running means are the input's
    slots, domain0, domain1, momentum,  # S; the layer's domain of each present domain; the averages' rate
    scale_h_ptr,  # (T, R, G) population statistics as a scale (NORM, not TRAIN)
    scale_c_ptr, shift_c_ptr,  # (T, R, H) likewise for the cell state
    table_rows, table_row_step,  # R, and 0 (one table row for all) or 1 (one per row)
    N, H, split, eps,  # split: the first row of the second domain (N with one); eps of the normalisers
    NORM: tl.constexpr, TRAIN: tl.constexpr, RUNNING: tl.constexpr, D: tl.constexpr, HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    EMULATE: tl.constexpr,
):
    # RUNNING: the moving averages are updated here, in timestep order (timesteps past the S slots share
    # the last one), which no batched kernel could do
    # grid (cdiv(H, BLOCK_H), cdiv(N, BLOCK_N)); with NORM and TRAIN one program row holds all N
    G = 4 * H
    units = tl.program_id(0) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, unit_ok = rows < N, units < H
    tile_ok = row_ok[:, None] & unit_ok[None, :]
    prev_ok = row_ok & (t > 0)
    prev_tile = prev_ok[:, None] & unit_ok[None, :]
    mask_row = row_ok.to(tl.float32)
    if HAS_MASK:
        mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
    if NORM and TRAIN:
        wn0, _, wn1, _, first, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split, D)
        if RUNNING:  # a domain without a real row at t leaves its averages alone
            slot = tl.minimum(t, slots - 1)
            rate0 = momentum * (tl.sum(tl.where(first, mask_row, 0.0), axis=0) > 0).to(tl.float32)
            rate1 = momentum * (tl.sum(tl.where(second, mask_row, 0.0), axis=0) > 0).to(tl.float32)
    h_prev_ptr = out_ptr + (t - 1) * N * H
    for gate in tl.static_range(4):
        cols = gate * H + units
        offsets = t * N * G + rows[:, None] * G + cols[None, :]
        a = _product(h_prev_ptr, prev_ok, rows, H, w_hh_ptr, 1, H, cols, unit_ok, BLOCK_N, BLOCK_H, BLOCK_K,
                     PRECISION, EMULATE)
        if NORM:
            if TRAIN:
                tl.store(ah_ptr + offsets, a, mask=tile_ok)
                gamma = tl.load(gamma_h_ptr + cols, mask=unit_ok, other=0.0)
                a, mean0, var0, mean1, var1 = _normalise(a, wn0, wn1, second, gamma, eps, D)
                _store_stats(mean_h_ptr, var_h_ptr, t, cols, unit_ok, G, mean0, var0, mean1, var1, D)
                if RUNNING:
                    _update_running(run_h_mean_ptr, run_h_var_ptr, domain0, slot, slots, G, cols, unit_ok,
                                    mean0, var0, rate0)
                    if D == 2:
                        _update_running(run_h_mean_ptr, run_h_var_ptr, domain1, slot, slots, G, cols, unit_ok,
                                        mean1, var1, rate1)
                    shift = tl.load(shift_x_ptr + cols, mask=unit_ok, other=0.0)
                    for p in tl.static_range(D):
                        stats = (t * D + p) * G + cols
                        mean_x = tl.load(mean_x_ptr + stats, mask=unit_ok, other=0.0) + shift
                        var_x = tl.load(var_x_ptr + stats, mask=unit_ok, other=0.0)
                        _update_running(run_x_mean_ptr, run_x_var_ptr, domain0 if p == 0 else domain1, slot,
                                        slots, G, cols, unit_ok, mean_x, var_x, rate0 if p == 0 else rate1)
            else:
                table = (t * table_rows + rows[:, None] * table_row_step) * G + cols[None, :]
                a = a * tl.load(scale_h_ptr + table, mask=tile_ok, other=0.0)
        z = a + tl.load(zx_ptr + offsets, mask=tile_ok, other=0.0)
        if gate == 3:
            act = _tanh(z)
        else:
            act = tl.sigmoid(z)
        if TRAIN:
            tl.store(gates_ptr + offsets, act, mask=tile_ok)
        if gate == 0:
            forget = act
        elif gate == 1:
            inp = act
        elif gate == 2:
            out_gate = act
        else:
            candidate = act
    state = rows[:, None] * H + units[None, :]
    c_prev = tl.load(cell_ptr + (t - 1) * N * H + state, mask=prev_tile, other=0.0)
    c = forget * c_prev + inp * candidate
    u = c
    if NORM:
        if TRAIN:  # plain BN over every real row: the cell state's normaliser ignores the domains
            weights = mask_row / tl.maximum(tl.sum(mask_row, axis=0), MIN_TOTAL)
            mean_c, var_c = _moments(c, weights)
            gamma_c = tl.load(gamma_c_ptr + units, mask=unit_ok, other=0.0)
            beta_c = tl.load(beta_c_ptr + units, mask=unit_ok, other=0.0)
            u = (c - mean_c[None, :]) * (gamma_c * tl.rsqrt(var_c + eps))[None, :] + beta_c[None, :]
            tl.store(mean_c_ptr + t * H + units, mean_c, mask=unit_ok)
            tl.store(var_c_ptr + t * H + units, var_c, mask=unit_ok)
            if RUNNING:
                rate_c = momentum * (tl.sum(mask_row, axis=0) > 0).to(tl.float32)
                _update_running(run_c_mean_ptr, run_c_var_ptr, 0, slot, slots, H, units, unit_ok, mean_c,
                                var_c, rate_c)
        else:
            table = (t * table_rows + rows[:, None] * table_row_step) * H + units[None, :]
            u = c * tl.load(scale_c_ptr + table, mask=tile_ok, other=0.0) + tl.load(shift_c_ptr + table,
                                                                                    mask=tile_ok, other=0.0)
    tanh_u = _tanh(u)
    h = out_gate * tanh_u
    if TRAIN:
        tl.store(tanh_ptr + t * N * H + state, tanh_u, mask=tile_ok)
    if HAS_MASK:  # a padded frame carries the state through unchanged
        keep = (mask_row > 0)[:, None]
        h = tl.where(keep, h, tl.load(h_prev_ptr + state, mask=prev_tile, other=0.0))
        c = tl.where(keep, c, c_prev)
    tl.store(out_ptr + t * N * H + state, h, mask=tile_ok)
    tl.store(cell_ptr + t * N * H + state, c, mask=tile_ok)


@triton.jit(do_not_specialize=["t"])
def step_backward(
    t, T,  # the timestep, run from T - 1 down to 0
    d_out_ptr,  # (T, N, H) dL/dh_t from the layer's output
    w_hh_ptr,  # (G, H) recurrent weights
    gates_ptr,  # (T, N, G) the forward's activations
    tanh_ptr,  # (T, N, H) the forward's tanh of the normalised cell state
    cell_ptr,  # (T, N, H) the forward's c_t
    mask_ptr,  # (T, N) float (read if HAS_MASK)
    dh_carry_ptr,  # (N, H) in/out (HAS_MASK): dL/dh_t that came through padded frames after t
    dc_carry_ptr,  # (N, H) in/out: dL/dc_t from step t + 1 (ignored at t = T - 1)
    dz_ptr,  # (T, N, G) out: dL/dz_t of the gate pre-activations (the input side's gradient too)
    dah_ptr,  # (T, N, G) out if NORM: dL/d(W_h h_{t-1}); step t + 1's is read (dz_ptr without NORM)
    ah_ptr,  # (T, N, G) the forward's W_h h_{t-1} (NORM)
    weight_ptr,  # (D, N) contribution weights (NORM)
    direction_ptr,  # (E, N) d weights[k] / d alpha_k (E > 0)
    gamma_h_ptr,  # (G,) (NORM)
    mean_h_ptr, var_h_ptr,  # (T, D, G) the forward's hidden-side statistics (NORM)
    gamma_c_ptr,  # (H,) (NORM)
    mean_c_ptr, var_c_ptr,  # (T, 1, H) the forward's cell statistics (NORM)
    dgamma_h_ptr,  # (T, G) out (NORM), row stride sums_stride: sum over rows of dz x_hat of the hidden side
    dgamma_c_ptr, dbeta_c_ptr,  # (T, H) out (NORM), likewise: the cell normaliser's gamma and beta
    dalpha_ptr,  # (T, P, E) out (E > 0), row stride alpha_stride: alpha partials, P = cdiv(H, BLOCK_H)
    sums_stride, alpha_stride,
    N, H, split, eps,  # as for `step_forward`
    NORM: tl.constexpr, D: tl.constexpr, E: tl.constexpr, HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    EMULATE: tl.constexpr,
):
    # grid (cdiv(H, BLOCK_H), cdiv(N, BLOCK_N)), the forward's programs; with NORM one holds all rows
    G = 4 * H
    block = tl.program_id(0)
    units = block * BLOCK_H + tl.arange(0, BLOCK_H)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, unit_ok = rows < N, units < H
    tile_ok = row_ok[:, None] & unit_ok[None, :]
    next_ok = row_ok & (t + 1 < T)
    next_tile = next_ok[:, None] & unit_ok[None, :]
    state = rows[:, None] * H + units[None, :]
    mask_row = row_ok.to(tl.float32)
    if HAS_MASK:
        mask_row = tl.load(mask_ptr + t * N + rows, mask=row_ok, other=0.0)
    # dL/dh_t: from the output, and from step t + 1 through W_h (every gate column: K = G)
    dh = tl.load(d_out_ptr + t * N * H + state, mask=tile_ok, other=0.0)
    dh += _product(dah_ptr + (t + 1) * N * G, next_ok, rows, G, w_hh_ptr, H, 1, units, unit_ok, BLOCK_N,
                   BLOCK_H, BLOCK_K, PRECISION, EMULATE)
    keep = (mask_row > 0)[:, None]
    if HAS_MASK:  # a padded frame's h_t is h_{t-1}: its gradient passes on to step t - 1 untouched
        dh += tl.load(dh_carry_ptr + state, mask=next_tile, other=0.0)
        dh_pass = tl.where(keep, 0.0, dh)
        dh = tl.where(keep, dh, 0.0)
    gate_offsets = t * N * G + rows[:, None] * G + units[None, :]
    forget = tl.load(gates_ptr + gate_offsets, mask=tile_ok, other=0.0)
    inp = tl.load(gates_ptr + gate_offsets + H, mask=tile_ok, other=0.0)
    out_gate = tl.load(gates_ptr + gate_offsets + 2 * H, mask=tile_ok, other=0.0)
    candidate = tl.load(gates_ptr + gate_offsets + 3 * H, mask=tile_ok, other=0.0)
    tanh_u = tl.load(tanh_ptr + t * N * H + state, mask=tile_ok, other=0.0)
    du = dh * out_gate * (1.0 - tanh_u * tanh_u)
    dc = tl.load(dc_carry_ptr + state, mask=next_tile, other=0.0)
    if NORM:  # the cell normaliser: one domain, weights 1 on real rows
        c = tl.load(cell_ptr + t * N * H + state, mask=tile_ok, other=0.0)
        weights = mask_row / tl.maximum(tl.sum(mask_row, axis=0), MIN_TOTAL)
        gamma_c = tl.load(gamma_c_ptr + units, mask=unit_ok, other=0.0)
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
    c_prev = tl.load(cell_ptr + (t - 1) * N * H + state, mask=(row_ok & (t > 0))[:, None] & unit_ok[None, :],
                     other=0.0)
    dc_prev = dc * forget
    if HAS_MASK:
        dc_prev += dc_pass
        tl.store(dh_carry_ptr + state, dh_pass, mask=tile_ok)
    tl.store(dc_carry_ptr + state, dc_prev, mask=tile_ok)

    if NORM:
        wn0, total0, wn1, total1, first, second = _domain_rows(weight_ptr, mask_row, rows, row_ok, N, split,
                                                               D)
        jm0, jm1 = _scaled_directions(direction_ptr, mask_row, rows, row_ok, N, total0, total1, E)
    alpha0 = 0.0
    alpha1 = 0.0
    for gate in tl.static_range(4):
        if gate == 0:
            dz = dc * c_prev * forget * (1.0 - forget)
        elif gate == 1:
            dz = dc * candidate * inp * (1.0 - inp)
        elif gate == 2:
            dz = dh * tanh_u * out_gate * (1.0 - out_gate)
        else:
            dz = dc * inp * (1.0 - candidate * candidate)
        cols = gate * H + units
        tl.store(dz_ptr + gate_offsets + gate * H, dz, mask=tile_ok)
        if NORM:
            a = tl.load(ah_ptr + gate_offsets + gate * H, mask=tile_ok, other=0.0)
            gamma = tl.load(gamma_h_ptr + cols, mask=unit_ok, other=0.0)
            da, dgamma, _, part0, part1 = _norm_backward(dz, a, mean_h_ptr, var_h_ptr, t, cols, unit_ok, G,
                                                         wn0, wn1, first, second, jm0, jm1, gamma, eps, D, E)
            tl.store(dah_ptr + gate_offsets + gate * H, da, mask=tile_ok)
            tl.store(dgamma_h_ptr + t * sums_stride + cols, dgamma, mask=unit_ok)
            alpha0 += part0
            alpha1 += part1
    if NORM and E > 0:
        partial = t * alpha_stride + block * E
        tl.store(dalpha_ptr + partial, alpha0)
        tl.store(dalpha_ptr + partial + 1, alpha1)
