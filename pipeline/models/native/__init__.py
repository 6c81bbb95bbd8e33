"""The native CPU kernel of one recurrent layer: the per-timestep loop in C++ (`sequence_kernel.cpp`).

The tensor kernel (`pipeline.models.fused`) makes hundreds of small PyTorch calls per timestep, and
below the paper's size each call's dispatch costs more than its arithmetic. This kernel runs the
same computation with each step's elementwise work as plain C++ loops over rows and only the
products with the weights as ATen calls; what does not depend on the recurrence (W_x x_t for all
steps, the weight gradients, alpha's gradient) stays in large PyTorch operations around it.

The extension is compiled on first use with the C++ compiler PyTorch finds (and ninja), about a
minute once per machine and version of the source, into `TORCH_EXTENSIONS_DIR` (default
~/.cache/torch_extensions); later processes import that build directly; processes started together
wait for one build. Where it cannot be built (no compiler) or
`DDLSTM_NATIVE=0` is set, `available()` is False and the layers use the tensor kernel, with a
warning saying why. CPU tensors only: on CUDA the tensor kernel runs.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import threading
from pathlib import Path

import torch

from ..stepnorm import NormSpec, StepWeights, alpha_gradient, real_mean
from ..workspace import POOL

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("sequence_kernel.cpp")
_lock = threading.Lock()
_state: dict = {}


# -fopenmp: at::parallel_for splits a step's rows between PyTorch's threads (the OpenMP runtime is
# PyTorch's own libgomp, already loaded); without it the loops run on one thread.
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]


def _build_directory(name: str) -> Path:
    base = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(base) / f"ddlstm-torch{torch.__version__}" / name


def _compile_or_import():
    """The module: imported straight from an earlier build of this very source (a fraction of a second),
    else compiled by torch.utils.cpp_extension (about a minute; processes started together wait for
    one build)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:12]
    name = f"ddlstm_sequence_kernel_{digest}"
    directory = _build_directory(name)
    library = directory / f"{name}.so"
    if library.is_file():
        try:
            loader = importlib.machinery.ExtensionFileLoader(name, str(library))
            spec = importlib.util.spec_from_file_location(name, library, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
        except ImportError:
            pass  # half-written or foreign build: let torch rebuild it
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # its CUDA_HOME notice
    from torch.utils.cpp_extension import load

    directory.mkdir(parents=True, exist_ok=True)
    log.info("compiling the native recurrent kernel into %s (once per machine and version)", directory)
    return load(name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, extra_ldflags=["-fopenmp"],
                build_directory=str(directory), verbose=False)


def extension():
    """The compiled module, or None (and the reason logged once) where it cannot be had."""
    with _lock:
        if "module" not in _state:
            _state["module"] = None
            if os.environ.get("DDLSTM_NATIVE", "1") == "0":
                _state["reason"] = "DDLSTM_NATIVE=0"
            else:
                try:
                    _state["module"] = _compile_or_import()
                except Exception as error:  # noqa: BLE001  (no compiler, no ninja, a failed build: fall back)
                    _state["reason"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}"
                    log.warning("the native recurrent kernel is not available (%s); using the tensor kernel",
                                _state["reason"])
        return _state["module"]


def available() -> bool:
    return extension() is not None


def unavailable_reason() -> str:
    return _state.get("reason", "")


def _empty(like, dtype=None):
    return like.new_empty(0, dtype=dtype)


class NativeRecurrentLayer(torch.autograd.Function):
    """One layer over a whole sequence from a zero state, x (N, T, I) -> (N, T, H) and the batch
    statistics of its normalisers; real parameters (tanh not folded into them). `spec` is None for
    the plain LSTM. Returns (out, mean_x, var_x, mean_h, var_h, mean_c, var_c), the statistics
    (T, d, F) empty for the plain LSTM; only `out` is differentiable."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec: NormSpec | None):
        module = extension()
        N, T, I = x.shape
        H = w_hh.shape[1]
        G = 4 * H
        norm = spec is not None
        x_tm = x.transpose(0, 1).contiguous()  # (T, N, I)
        mask_tm = _empty(x, torch.bool) if mask is None else mask.t().contiguous()
        mask_f = None if mask is None else mask_tm.to(x.dtype)
        out = x.new_empty(T, N, H)
        gates = POOL.take((T, N, G), x)
        tanh_cell = POOL.take((T, N, H), x)
        cc = POOL.take((T + 1, N, 2 * H if norm else H), x)
        if norm:
            d, e = len(spec.blocks), len(spec.owners)
            w_x = StepWeights(spec.weights, mask_f, spec.directions, spec.owners)
            weights_xh = w_x.products()
            weights_c = StepWeights(x.new_ones(1, N), mask_f).products()
            # batch normalisation ignores a constant shift: centre x first, for accurate E[a^2] - E[a]^2
            centre = real_mean(x_tm, mask_f)
            x_tm = x_tm - centre
            acts = POOL.take((T, N, 4 * G), x)
            torch.mm(x_tm.view(T * N, I), w_ih.t(), out=acts.view(T * N, 4 * G)[:, :G])
            blocks = torch.tensor(spec.blocks, dtype=torch.int64)
            stats = (x.new_empty(T, d + e, 4 * G), x.new_empty(T, d, 2 * G), x.new_empty(T, d, 2 * G),
                     x.new_empty(T, 1, 2 * H), x.new_empty(T, 1, H), x.new_empty(T, 1, H))
            gamma_xh, beta_xh = torch.cat([gx, gh]).contiguous(), torch.cat([bx, bh]).contiguous()
            module.forward_loop(acts, w_hh.contiguous(), bias.contiguous(), gamma_xh, beta_xh, gc.contiguous(),
                                bc.contiguous(), weights_xh, weights_c, blocks, mask_tm, spec.eps, out, gates, cc,
                                tanh_cell, *stats)
            xh_moments, xh_var, xh_rstd, c_moments, c_var, c_rstd = stats
            mean_x = xh_moments[:, :d, :G] + w_ih @ centre  # the centring shifted the x side's means
            batch_stats = (mean_x, xh_var[..., :G], xh_moments[:, :d, G:2 * G], xh_var[..., G:],
                           c_moments[..., :H], c_var)
            ctx.norm = (weights_xh, weights_c, blocks, w_x.direction_sums, gamma_xh, xh_moments, xh_var, xh_rstd,
                        c_moments, c_rstd)
        else:
            acts = POOL.take((T, N, G), x)
            torch.addmm(bias, x_tm.view(T * N, I), w_ih.t(), out=acts.view(T * N, G))
            empty = _empty(x)
            module.forward_loop(acts, w_hh.contiguous(), bias.contiguous(), empty, empty, empty, empty, empty, empty,
                                torch.zeros(0, 2, dtype=torch.int64), mask_tm, 0.0, out, gates, cc, tanh_cell,
                                empty, empty, empty, empty, empty, empty)
            batch_stats = (empty,) * 6
            ctx.norm = None
        ctx.spec = spec
        ctx.work = (x_tm, acts, gates, cc, tanh_cell, mask_tm)
        ctx.save_for_backward(w_ih, w_hh, alpha, gx, gh, gc, out)
        ctx.mark_non_differentiable(*batch_stats)
        return (out.transpose(0, 1), *batch_stats)

    @staticmethod
    def backward(ctx, d_out, *_unused_stat_grads):
        if ctx.work is None:
            raise RuntimeError("the native recurrent kernel supports one backward pass per forward; for "
                               "retain_graph=True use implementation='reference'")
        module = extension()
        w_ih, w_hh, alpha, _, _, gc, out = ctx.saved_tensors
        x_tm, acts, gates, cc, tanh_cell, mask_tm = ctx.work
        spec = ctx.spec
        T, N, H = out.shape
        G = 4 * H
        d_out = d_out.transpose(0, 1).contiguous()
        d_bias = gates.new_zeros(G)
        if spec is not None:
            (weights_xh, weights_c, blocks, direction_sums, gamma_xh, xh_moments, xh_var, xh_rstd, c_moments,
             c_rstd) = ctx.norm
            d = len(spec.blocks)
            d_acts = POOL.take((T, N, 2 * G), gates)
            affine = [gates.new_zeros(2 * G), gates.new_zeros(2 * G), gates.new_zeros(H), gates.new_zeros(H)]
            coef_all, grad_mean_all = gates.new_empty(T, d, 4 * G), gates.new_empty(T, d, 2 * G)
            module.backward_loop(d_out, acts, w_hh.contiguous(), gamma_xh, gc.contiguous(), weights_xh, weights_c,
                                 blocks, mask_tm, gates, cc, tanh_cell, xh_moments, xh_rstd, c_moments, c_rstd,
                                 d_acts, d_bias, *affine, coef_all, grad_mean_all)
            flat = d_acts.view(T * N, 2 * G)
            d_x_side, d_h_side = flat[:, :G], flat[:, G:]
        else:
            d_acts = POOL.take((T, N, G), gates)
            empty = _empty(gates)
            module.backward_loop(d_out, acts, w_hh.contiguous(), empty, empty, empty, empty,
                                 torch.zeros(0, 2, dtype=torch.int64), mask_tm, gates, cc, tanh_cell, empty, empty,
                                 empty, empty, d_acts, d_bias, empty, empty, empty, empty, empty, empty)
            d_x_side = d_h_side = d_acts.view(T * N, G)
        # h_{t-1}: the output one step earlier (padded steps already carry it), zero at t = 0
        d_w_hh = d_h_side[N:].t() @ out[:-1].reshape((T - 1) * N, H) if T > 1 else torch.zeros_like(w_hh)
        d_x = (d_x_side @ w_ih).view(T, N, -1).transpose(0, 1) if ctx.needs_input_grad[0] else None
        d_w_ih = d_x_side.t() @ x_tm.view(T * N, -1)
        grads = [None] * 6  # gx, bx, gh, bh, gc, bc
        d_alpha = None
        if spec is not None:
            d_gamma_xh, d_beta_xh, d_gamma_c, d_beta_c = affine
            grads = [d_gamma_xh[:G], d_beta_xh[:G], d_gamma_xh[G:], d_beta_xh[G:], d_gamma_c, d_beta_c]
            if ctx.needs_input_grad[4] and spec.owners:
                d_alpha = torch.zeros_like(alpha)
                values = alpha_gradient(xh_moments, xh_var, direction_sums, coef_all, grad_mean_all, spec.owners,
                                        d).to(alpha.dtype)
                for k, index in enumerate(spec.alpha_indices):
                    d_alpha[index] = values[k]
        POOL.give(acts, gates, cc, tanh_cell, d_acts)
        ctx.work = ctx.norm = None
        return (d_x, d_w_ih, d_w_hh, d_bias, d_alpha, *grads, None, None)


def train_sequence(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec):
    """As `pipeline.models.fused.train_sequence`: (out (N, T, H), the batch statistics)."""
    out, *stats = NativeRecurrentLayer.apply(x, w_ih, w_hh, bias, alpha, gx, bx, gh, bh, gc, bc, mask, spec)
    return out, stats


@torch.no_grad()
def evaluate_layer(x, w_ih, w_hh, bias, mask, affine):
    """As `pipeline.models.fused.evaluate_layer`: one layer in evaluation mode, no graph, from the real
    parameters and (for normalising layers) the population statistics as per-timestep affine maps."""
    module = extension()
    N, T, I = x.shape
    H = w_hh.shape[1]
    x_tm = x.transpose(0, 1).contiguous()
    acts = (x_tm.view(T * N, I) @ w_ih.t()).view(T, N, 4 * H)
    if affine is None:
        acts += bias
    mask_tm = _empty(x, torch.bool) if mask is None else mask.t().contiguous()
    out = x.new_empty(T, N, H)
    if affine is None:
        empty = _empty(x)
        module.evaluate_loop(acts, w_hh.contiguous(), empty, empty, empty, empty, empty, mask_tm, out)
    else:
        tables = [table.expand(T, table.shape[1], table.shape[2]).contiguous()
                  for table in (affine.scale_x, affine.scale_h, affine.shift_gates, affine.scale_c, affine.shift_c)]
        module.evaluate_loop(acts, w_hh.contiguous(), *tables, mask_tm, out)
    return out.transpose(0, 1)
