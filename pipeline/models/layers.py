"""One recurrent layer: LSTM, BNLSTM or DDLSTM cell over a sequence, with injected normalisation.

The cell (docs/method.md §3), gate order f, i, o, g:

    [f; i; o; g] = N_h(W_h h_{t-1}) + N_x(W_x x_t) + b
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(N_c(c_t))

with N_* the identity (LSTM), per-timestep BN (BNLSTM, Cooijmans et al. 2017, eq. 1-3 of the
paper) or DDBN on the input and hidden sides and BN on the cell state (DDLSTM, eq. 10). The two
DDBNs of a layer share one set of alphas. `step` is this cell at one timestep, written with the
`ddbn` modules and autograd: the readable reference, and the streaming path.

A whole sequence goes through one of four implementations of the same function, which take the
layer's real parameters (each kernel owns whatever algebra makes it fast):

* "native": the per-timestep loop in C++ (`native/`), CPU only, where it can be compiled;
* "fused": the tensor kernel (`fused.py`), one autograd node per layer, any device;
* "triton": Triton kernels (`triton_kernel/`), one persistent launch per layer and direction (or one
  launch per timestep, the step kernels), CUDA (and CPU tensors under TRITON_INTERPRET=1, which is how
  it is tested without a GPU);
* "reference": `step` at every timestep.

`implementation="auto"` takes the native kernel on the CPU when it is available; the fused kernel off
CUDA. On CUDA it takes the Triton kernels where Triton imports and can build its launcher (a C compiler
and Python's headers), and where the self-check of the call's shape class (layer kind, training or
evaluation, the tiles and warps its rows and hidden size give, the precision), run once per process on
that device, agrees with the fused kernel; else the fused kernel, with one warning naming why. A Triton
call that fails after its self-check (forward or backward) runs through the fused kernel, with one
warning, and so does every later call on that device. The Triton package is imported only when it is
used or checked. Evaluation-mode forwards without a gradient run the chosen kernel's graph-free loop.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from . import fused, native
from .contribution import check_domain_sizes, contribution_directions
from .ddbn import BN, DDBN, update_running_sequence
from .stepnorm import NormSpec

NORMALISATIONS = ("none", "bn", "ddbn")
IMPLEMENTATIONS = ("auto", "native", "fused", "triton", "reference")
_TRITON_PACKAGE = f"{__package__}.triton_kernel"
_auto_verdicts: dict[str, str] = {}  # CUDA device -> "triton" or "fused", after its preflight or a failure
_class_verdicts: dict[tuple, str | None] = {}  # (device, kind, training, shape class) -> what failed, or None


def _triton():
    """The Triton package, imported on first use: `import triton` is not for every CPU job, and
    TRITON_INTERPRET must be set before the kernels are decorated."""
    from . import triton_kernel

    return triton_kernel


def triton_unavailable(device: torch.device) -> str | None:
    """Why implementation="triton" cannot run on `device`, or None."""
    loaded = sys.modules.get(_TRITON_PACKAGE)
    counting = loaded is not None and loaded.counting_active()
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1" and not counting:
        return "the Triton kernels run on CUDA devices, or on CPU tensors under TRITON_INTERPRET=1"
    try:
        module = _triton()
    except ImportError as error:
        return f"Triton cannot be imported ({error})"
    return module.unavailable_reason(device)


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _auto_on_cuda(device: torch.device) -> str:
    """"triton" where Triton can run on this device (it imports, and a C compiler with Python's headers is
    there for its launcher), else "fused" (warned once per device)."""
    key = _device_key(device)
    if key not in _auto_verdicts:
        try:
            reason = triton_unavailable(device)
            if reason is None:
                from .triton_kernel import selfcheck

                reason = selfcheck.launcher_build_problem()
        except Exception as error:  # noqa: BLE001  (a broken installation: the fused kernel runs)
            reason = _one_line(error)
        if reason is not None:
            warnings.warn(f"implementation='auto' on {key}: not using the Triton kernels ({reason}); "
                          "using the fused kernel", stacklevel=3)
        _auto_verdicts[key] = "fused" if reason is not None else "triton"
    return _auto_verdicts[key]


def _device_key(device: torch.device) -> str:
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}"


def _auto_checked(layer: RecurrentLayer, x: torch.Tensor) -> str:
    """"triton" where the self-check of this call's shape class passed, else "fused": the class is what the
    kernels compile to (the layer kind, training or evaluation, the tiles and warps the rows and hidden size
    give, the precision); its self-check runs once per process, at this call's rows and hidden size."""
    from .triton_kernel import selfcheck

    key = _device_key(x.device)
    if _auto_verdicts.get(key) == "fused":  # a Triton call on this device failed since
        return "fused"
    statistics = layer.training and layer.normalisation != "none"
    shape = selfcheck.shape_class(x.shape[0], layer.hidden_size, statistics, x.device)
    name = (key, layer.normalisation, layer.training, shape)
    if name not in _class_verdicts:
        try:
            reason = selfcheck.self_check(torch.device(key), layer.normalisation, rows=x.shape[0],
                                       hidden=layer.hidden_size, training=layer.training)
        except Exception as error:  # noqa: BLE001  (a compile error, a driver error: the fused kernel runs)
            reason = _one_line(error)
        if reason is not None:
            mode = "training" if layer.training else "evaluation"
            warnings.warn(f"implementation='auto' on {key}: not using the Triton kernels for {mode} of "
                          f"{layer.normalisation!r} layers with {x.shape[0]} rows, {layer.hidden_size} units "
                          f"({reason}); using the fused kernel", stacklevel=4)
        _class_verdicts[name] = reason
    return "fused" if _class_verdicts[name] is not None else "triton"


def auto_failed(device: torch.device, error: Exception) -> None:
    """A Triton call chosen by implementation="auto" failed after its self-check: one warning, and the fused
    kernel for every later call on this device."""
    key = _device_key(device)
    if _auto_verdicts.get(key) != "fused":
        warnings.warn(f"implementation='auto' on {key}: a Triton kernel failed ({_one_line(error)}); using "
                      "the fused kernel from now on", stacklevel=3)
    _auto_verdicts[key] = "fused"


def resolve_implementation(implementation: str, device: torch.device) -> str:
    """The implementation that runs: "auto" becomes "native" on the CPU where it is available, "triton"
    on CUDA once its self-check passed there, "fused" otherwise."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if implementation == "auto":
        if device.type == "cuda":
            return _auto_on_cuda(device)
        return "native" if device.type == "cpu" and native.available() else "fused"
    if implementation == "triton":
        reason = triton_unavailable(device)
        if reason is not None:
            raise RuntimeError(f"implementation='triton' cannot run on {device}: {reason}")
        return implementation
    if implementation == "native" and device.type != "cpu":
        raise ValueError("the native kernel runs on the CPU only; on CUDA use implementation='triton' "
                         "or 'fused'")
    if implementation == "native" and not native.available():
        raise RuntimeError(f"the native kernel could not be built ({native.unavailable_reason()})")
    return implementation


def _kernel_module(implementation: str):
    """The module whose `train_sequence` / `evaluate_layer` run a sequence."""
    if implementation == "native":
        return native
    return _triton() if implementation == "triton" else fused


class RecurrentLayer(nn.Module):
    """A single LSTM-family layer over batch-major sequences (N, T, input_size)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        normalisation: str = "none",
        num_domains: int = 2,
        alpha_init: float = 0.75,
        max_timesteps: int = 200,
        learnable_affine: bool = False,
        gamma_init: float = 0.1,
        beta_init: float = 0.0,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.normalisation = normalisation
        self.num_domains = num_domains if normalisation == "ddbn" else 1
        gates = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias = nn.Parameter(torch.empty(gates))
        if normalisation != "none":
            bn_args = {"max_timesteps": max_timesteps, "eps": eps, "momentum": momentum,
                       "gamma_init": gamma_init, "beta_init": beta_init,
                       "learnable_affine": learnable_affine}
            if normalisation == "ddbn":
                self.norm_x = DDBN(gates, num_domains, alpha_init=alpha_init, **bn_args)
                self.norm_h = DDBN(gates, num_domains, alpha_init=alpha_init, **bn_args)
                self.norm_h.alpha = self.norm_x.alpha  # one alpha set per layer (paper sec. 3)
            else:
                self.norm_x = BN(gates, **bn_args)
                self.norm_h = BN(gates, **bn_args)
            self.norm_c = BN(hidden_size, **bn_args)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(+-1/sqrt(H)) weights as nn.LSTM; zero bias but 1 for the forget gate."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[: self.hidden_size] = 1.0

    @property
    def alpha(self) -> nn.Parameter | None:
        return self.norm_x.alpha if self.normalisation == "ddbn" else None

    # -- one timestep: the cell -------------------------------------------------------------------

    def step(
        self,
        x_t: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None,
        t: int,
        domain_sizes: Sequence[int] | None = None,
        domain: int | torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        weights=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cell at timestep t: x_t (N, input_size), state (h, c) -> (h, c)."""
        n = x_t.shape[0]
        if state is None:
            zeros = x_t.new_zeros(n, self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        ax = x_t @ self.weight_ih.t()
        ah = h @ self.weight_hh.t()
        if self.normalisation == "none":
            z = ax + ah + self.bias
        else:
            if self.training and domain_sizes is None:
                domain_sizes = self._training_domain_sizes(None, n)
            kw = {"domain_sizes": domain_sizes, "domain": domain, "mask": mask, "weights": weights}
            z = self.norm_h(ah, t, **kw) + self.norm_x(ax, t, **kw) + self.bias
        f, i, o, g = z.chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = c_new if self.normalisation == "none" else self.norm_c(c_new, t, mask=mask)
        h_new = torch.sigmoid(o) * torch.tanh(c_out)
        if mask is not None:
            keep = mask.unsqueeze(1)
            h_new = torch.where(keep, h_new, h)
            c_new = torch.where(keep, c_new, c)
        return h_new, c_new

    # -- whole sequences --------------------------------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        domain_sizes: Sequence[int] | None = None,
        domain: int | torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        implementation: str = "auto",
    ) -> torch.Tensor:
        """x (N, T, input_size) -> (N, T, hidden_size), from a zero state.

        mask (N, T) bool marks real frames; padded steps enter no statistic and carry the state
        through unchanged.
        """
        fallback = implementation == "auto"  # a Triton call that fails goes to the fused kernel
        implementation = resolve_implementation(implementation, x.device)
        if self.training and domain_sizes is not None:
            domain_sizes = check_domain_sizes(domain_sizes, self.num_domains, x.shape[0])
        wants_graph = torch.is_grad_enabled() and (x.requires_grad or self.weight_ih.requires_grad)
        if implementation == "reference" or (not self.training and wants_graph):
            return self._reference(x, domain_sizes, domain, mask)
        if fallback and implementation == "triton":
            implementation = _auto_checked(self, x)
        if self.training:
            return self._train(x, domain_sizes, mask, implementation, fallback)
        return self._evaluate(x, domain, mask, implementation, fallback)

    def _training_domain_sizes(self, domain_sizes, n_rows: int) -> list[int]:
        if domain_sizes is not None:
            return list(domain_sizes)
        if self.num_domains > 1:
            raise ValueError("a DDLSTM in training mode needs domain_sizes=[n1, n2, ...]")
        return [n_rows]

    def _train(self, x, domain_sizes, mask, implementation, fallback=False):
        """Training mode through a kernel; the batch statistics it returns update the running ones.
        `fallback`: a Triton call that fails runs through the fused kernel (with one warning)."""
        if implementation == "triton":  # the bookkeeping below happens in its kernels
            sizes = self._training_domain_sizes(domain_sizes, x.shape[0])
            try:
                return _triton().train_layer(self, x, sizes, mask, fallback)
            except Exception as error:
                if not fallback:
                    raise
                auto_failed(x.device, error)
                implementation = "fused"
        kernel = _kernel_module(implementation).train_sequence
        if self.normalisation == "none":
            out, _ = kernel(x, self.weight_ih, self.weight_hh, self.bias, None, None, None, None, None, None, None,
                            mask, None)
            return out
        sizes = self._training_domain_sizes(domain_sizes, x.shape[0])
        self.norm_x.record_alpha_bounds(sizes)
        # The kernel takes alpha itself: its gradient is summed inside from the weights'
        # derivatives (`contribution_directions`), far cheaper than a (d, N) weight gradient.
        with torch.no_grad():
            weights, present = self.norm_x.contribution_weights(sizes)
        alpha = self.norm_x.effective_alpha()
        directions, owners, alpha_indices = (None, [], []) if alpha is None else \
            contribution_directions(alpha, sizes)
        starts = [sum(sizes[:dom]) for dom in present]
        spec = NormSpec(
            eps=self.norm_x.eps,
            blocks=[(s, s + sizes[dom]) for s, dom in zip(starts, present)],
            weights=weights.to(x.dtype),
            directions=None if directions is None else directions.to(x.dtype),
            owners=owners,
            alpha_indices=alpha_indices,
        )
        out, (mean_x, var_x, mean_h, var_h, mean_c, var_c) = kernel(
            x, self.weight_ih, self.weight_hh, self.bias, alpha, self.norm_x.gamma, self.norm_x.beta,
            self.norm_h.gamma, self.norm_h.beta, self.norm_c.gamma, self.norm_c.beta, mask, spec)
        has_rows = has_any = None
        if mask is not None:  # (T, d): does a domain have a real frame at a timestep?
            has_rows = torch.stack([mask[s:e].any(0) for s, e in spec.blocks], 1)
            has_any = mask.any(0).unsqueeze(1)
        update_running_sequence(self.norm_x, present, mean_x, var_x, has_rows)
        update_running_sequence(self.norm_h, present, mean_h, var_h, has_rows)
        update_running_sequence(self.norm_c, [0], mean_c, var_c, has_any)
        return out

    def _evaluate(self, x, domain, mask, implementation, fallback=False):
        """Evaluation mode without a graph: the population statistics as per-timestep affine maps."""
        if implementation == "triton" and fallback:
            try:
                return self._evaluate(x, domain, mask, implementation)
            except Exception as error:  # noqa: BLE001  (after its self-check: the fused kernel runs instead)
                auto_failed(x.device, error)
                implementation = "fused"
        kernel = _kernel_module(implementation).evaluate_layer
        if self.normalisation == "none":
            return kernel(x, self.weight_ih, self.weight_hh, self.bias, mask, None)
        steps = x.shape[1]
        slots = torch.arange(steps, device=x.device).clamp_max(self.norm_x.max_timesteps - 1)
        rows = self.norm_x.domain_ids(domain, x.shape[0], x.device)
        tables = []
        for bn in (self.norm_x, self.norm_h, self.norm_c):
            if bn.num_domains > 1 and isinstance(rows, torch.Tensor):  # per-row domains
                s, b = bn.population_affine(slots[None, :], rows[:, None])  # (N, T, F)
                s, b = s.transpose(0, 1), b.transpose(0, 1)
            else:
                s, b = bn.population_affine(slots, rows if bn.num_domains > 1 else 0)  # (T, F)
                s, b = s.unsqueeze(1), b.unsqueeze(1)
            tables.append((s.to(x.dtype), b.to(x.dtype)))
        (sx, bx), (sh, bh), (sc, bc) = tables
        affine = fused.EvalAffine(scale_x=sx, scale_h=sh, shift_gates=bx + bh + self.bias.to(x.dtype),
                                  scale_c=sc, shift_c=bc)
        return kernel(x, self.weight_ih, self.weight_hh, None, mask, affine)

    def _reference(self, x, domain_sizes, domain, mask):
        weights = None
        if self.training and self.normalisation != "none":
            sizes = self._training_domain_sizes(domain_sizes, x.shape[0])
            domain_sizes = sizes
            self.norm_x.record_alpha_bounds(sizes)
            weights = self.norm_x.contribution_weights(sizes)
        state = None
        outputs = []
        for t in range(x.shape[1]):
            state = self.step(
                x[:, t], state, t, domain_sizes=domain_sizes, domain=domain,
                mask=None if mask is None else mask[:, t], weights=weights,
            )
            outputs.append(state[0])
        return torch.stack(outputs, 1)
