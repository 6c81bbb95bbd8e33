"""The Triton implementation of one LSTM / BNLSTM / DDLSTM layer (`implementation="triton"`).

The same function as the reference cell (`pipeline.models.layers.RecurrentLayer.step`) and the other
kernels, in at most 2 T + 3 Triton launches per layer and sequence in training (T timesteps) and a few dozen
PyTorch operators around them, instead of the fused kernel's hundreds of small operators per timestep:

* `kernels.py`: the kernels. Per timestep one `step_forward` (one program per 16 hidden units and,
  with a normaliser, every row of the batch: W_h h_{t-1} for its four gate columns, the hidden side's
  per-domain weighted statistics, the gates, c_t, the cell state's batch normalisation, h_t, the
  moving averages) and one `step_backward` mirroring it; the input side's normaliser forward and
  backward batched over all timesteps; two domains' contribution weights in one launch;
* `function.py`: the autograd Function around them; the entry points `train_sequence` and
  `evaluate_layer`, with the interface of `pipeline.models.fused`, and `train_layer`, what
  `RecurrentLayer` calls in training (the layer's bookkeeping done in the kernels);
* `launcher.py`: tile choices, the launch counter and the counting-only mode;
* `checks.py`: the self-check `layers.resolve_implementation("auto")` runs on a CUDA device before
  choosing these kernels, the launch count of a training step, and compile-only checks for GPUs that
  are not here.

Where it runs: on CUDA devices; and on CPU tensors when TRITON_INTERPRET=1 is set in the environment
before this package is first imported (Triton decides at decoration time whether a kernel is
interpreted), which is how the tests check it on a machine without a GPU. Float32 only; more than 2
domains present in a batch, more than 256 rows in training with a normaliser (a step program holds
every row in registers), or another dtype go to the fused kernel with a one-time warning naming why.

Precision: the dot products are IEEE float32 (`tl.dot(..., input_precision="ieee")`) by default;
DDLSTM_TRITON_TF32=1 in the environment (read at every layer call) switches them to TF32, faster on
tensor cores, with ~1e-3 relative error in the products.
"""

from __future__ import annotations

import os

from .function import TritonRecurrentLayer, evaluate_layer, train_layer, train_sequence, unsupported_reason
from .launcher import counting, counting_active, launch_count

__all__ = [
    "TritonRecurrentLayer",
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
