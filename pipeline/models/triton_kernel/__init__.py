"""The Triton implementation of one LSTM / BNLSTM / DDLSTM layer (`implementation="triton"`).

The same function as the reference cell (`pipeline.models.layers.RecurrentLayer.step`) and the other
kernels. Per layer and training step, 5 Triton launches (DDLSTM: the contribution weights, the input side's
normaliser each way, the recurrence each way) and a few dozen PyTorch operators around them:

* `persistent.py`: the recurrence in one launch per layer and direction (`sequence_forward`,
  `sequence_backward`): programs of 4 hidden units (16 gate columns) and every row, resident on the
  device's SMs, looping over the timesteps with a grid-wide barrier after each; h_t (forward) and each
  program's share of dL/dh_t (backward) exchanged through global memory. Under TRITON_INTERPRET=1 the
  same body runs one timestep per launch (the launch boundary is the barrier there);
* `kernels.py`: the other kernels, and the step kernels: the recurrence as one launch per timestep
  (`step_forward`, `step_backward`), programs of 16 units, the fallback and a reference of the persistent
  ones (DDLSTM_TRITON_KERNEL=step selects them); the input side's normaliser forward and backward batched
  over all timesteps; two domains' contribution weights in one launch;
* `function.py`: the autograd Function around them; the entry points `train_sequence` and
  `evaluate_layer`, with the interface of `pipeline.models.fused`, and `train_layer`, what
  `RecurrentLayer` calls in training (the layer's bookkeeping done in the kernels);
* `launcher.py`: which kernels, tiles and precision a call gets (`plan`), the launch counter and the
  counting-only mode;
* `selfcheck.py`: what a device needs before the first launch (a C compiler with Python's headers), and
  the comparison with float64 that `layers.resolve_implementation("auto")` runs once per shape class;
* `checks.py`: the launch count of a training step, and compile-only checks for GPUs that are not here.

Where it runs: on CUDA devices; and on CPU tensors when TRITON_INTERPRET=1 is set in the environment
before this package is first imported (Triton decides at decoration time whether a kernel is
interpreted), which is how the tests check it on a machine without a GPU. Float32 only; more than 2
domains present in a batch, more than 256 rows in training with a normaliser (a program holds every row
in registers), or another dtype go to the fused kernel with a one-time warning naming why.

Precision (DDLSTM_TRITON_PRECISION, read at every layer call): the recurrent products on tensor cores as
three TF32 products, error-compensated ("tf32x3", the default: float32's accuracy in our measurements),
one TF32 product ("tf32", ~1e-3 relative error), or float32 FMAs ("ieee"). Under the interpreter, whose
products ignore the precision, the kernels reproduce TF32's rounding themselves.
"""
from __future__ import annotations

import os

from .function import TritonRecurrentLayer, evaluate_layer, train_layer, train_sequence, unsupported_reason
from .launcher import barrier_failures, counting, counting_active, launch_count

__all__ = [
    "TritonRecurrentLayer",
    "barrier_failures",
    "counting",
    "counting_active",
    "evaluate_layer",
    "interpreted",
    "launch_count",
    "train_layer",
    "train_sequence",
    "unavailable_reason",
    "unsupported_reason",
]


def interpreted() -> bool:
    """True when the kernels were decorated under TRITON_INTERPRET=1 (they run on CPU tensors)."""
    from triton.runtime.interpreter import InterpretedFunction

    from . import kernels

    return isinstance(kernels.step_forward, InterpretedFunction)


def unavailable_reason(device) -> str | None:
    """Why the kernels cannot run on `device` (None where they can)."""
    if counting_active():
        return None  # nothing is executed
    if device.type == "cuda":
        return None
    if device.type == "cpu" and interpreted():
        return None
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return ("TRITON_INTERPRET=1 was set after the Triton kernels were first imported; set it before "
                "(it is read when the kernels are decorated)")
    return f"the Triton kernels run on CUDA devices, or on the CPU under TRITON_INTERPRET=1, not on {device}"
