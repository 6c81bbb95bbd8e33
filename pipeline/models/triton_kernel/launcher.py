"""Every Triton launch of the recurrent layers goes through `launch` here: tile sizes, the dot products'
precision, the launch counter, and a counting-only mode that skips the kernels.

Counting mode (`counting()`): each launch is counted and, if asked, its specialisation recorded (the
argument types, alignments and constexprs the JIT would compile for), but not executed; everything
around the kernels runs as usual on whatever tensors it is given, CPU tensors included. Shapes are
static, so a training step run this way makes exactly the launches it makes on a GPU; its outputs are
garbage. `checks.count_step` adds the aten operators around the kernels (torch.profiler), and
`checks.compile_specialisation` compiles the recorded kernels for a GPU that is not there.

Tile choices (`choose_tiles`), per layer call:

* BLOCK_H = 16 hidden units per step program (tl.dot needs every dimension >= 16), so H / 16 programs;
* BLOCK_N: the rows a program holds, a power of two >= 16. A program that computes batch statistics
  (training with a normaliser) holds every row: N <= MAX_STAT_ROWS (256; beyond it registers run out,
  and the layer falls back to the fused kernel). Otherwise rows are tiled by at most 64;
* BLOCK_K: chunks of the products' reduction dimension: 32 over K = H in the forward step; over
  K = 4 H in the backward 64 for programs with statistics, else 32; loaded one chunk ahead
  (num_stages 2). Above 128 rows 16 and 16, unpipelined (num_stages 1). Chosen with ptxas -v for
  sm_80 and sm_90 at 32, 128 and 256 rows: larger chunks or deeper pipelines cost registers (up to
  255 on sm_80) and shared memory, or spilled (the plain LSTM's backward with 64, 256 rows with 32);
* BLOCK_F: the batched input-side programs' columns, 32 (16 above 128 rows), so a tile stays ~4K floats;
* num_warps: 4 up to 64 rows, 8 above.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

MAX_STAT_ROWS = 256
BLOCK_H = 16
TF32_VARIABLE = "DDLSTM_TRITON_TF32"

_state = threading.local()
_totals = {"launches": 0}


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class Tiles:
    block_n: int  # rows per program
    block_h: int  # hidden units per step program
    block_k_forward: int  # chunk of K = H in the forward step's product
    block_k_backward: int  # chunk of K = 4 H in the backward step's product
    block_f: int  # columns per program of the batched input-side kernels
    num_warps: int
    num_stages: int  # software pipelining of the step kernels' product loops (2: loads one chunk ahead)


def choose_tiles(rows: int, hidden: int, statistics: bool) -> Tiles:
    """Tiles for N = `rows`, H = `hidden`; `statistics`: the step programs reduce over every row."""
    padded = max(16, next_power_of_2(rows))
    if statistics and padded > MAX_STAT_ROWS:
        raise ValueError(f"{rows} rows: a Triton step program holds at most {MAX_STAT_ROWS} rows")
    block_n = padded if statistics else min(padded, 64)
    if block_n > 128:  # 256 rows: the smallest chunks, unpipelined, to stay within 255 registers
        return Tiles(block_n=block_n, block_h=BLOCK_H, block_k_forward=16, block_k_backward=16, block_f=16,
                     num_warps=8, num_stages=1)
    return Tiles(block_n=block_n, block_h=BLOCK_H, block_k_forward=min(32, max(16, next_power_of_2(hidden))),
                 block_k_backward=64 if statistics else 32, block_f=32, num_warps=4 if block_n <= 64 else 8,
                 num_stages=2)


def dot_precision() -> str:
    """"ieee" (float32 products, the default), or "tf32" where DDLSTM_TRITON_TF32=1 (read at every call)."""
    return "tf32" if os.environ.get(TF32_VARIABLE, "0") == "1" else "ieee"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# -- counting ---------------------------------------------------------------------------------------


class LaunchRecord:
    """What one counting-mode run launched: a count, and each distinct specialisation once."""

    def __init__(self, record_specialisations: bool):
        self.launches = 0
        self.by_kernel: dict[str, int] = {}
        self.specialisations: dict | None = {} if record_specialisations else None

    def add(self, kernel, args, constexprs, num_warps, num_stages):
        self.launches += 1
        name = kernel.__name__ if hasattr(kernel, "__name__") else kernel.fn.__name__
        self.by_kernel[name] = self.by_kernel.get(name, 0) + 1
        if self.specialisations is not None:
            from .checks import specialise  # only the compile-only checks need it

            key, value = specialise(kernel, args, constexprs, num_warps, num_stages)
            self.specialisations.setdefault(key, value)


def counting_active() -> bool:
    return getattr(_state, "record", None) is not None


@contextlib.contextmanager
def counting(record_specialisations: bool = False):
    """Count (and skip) every Triton launch inside; yields the `LaunchRecord`."""
    previous = getattr(_state, "record", None)
    record = LaunchRecord(record_specialisations)
    _state.record = record
    try:
        yield record
    finally:
        _state.record = previous


def launch_count() -> int:
    """Triton launches (executed or counted) since the process started."""
    return _totals["launches"]


def launch(kernel, grid: tuple, *args, num_warps: int, num_stages: int = 2, **constexprs) -> None:
    """Launch `kernel` on `grid` (or, in counting mode, count it and do nothing)."""
    _totals["launches"] += 1
    record = getattr(_state, "record", None)
    if record is not None:
        record.add(kernel, args, constexprs, num_warps, num_stages)
        return
    kernel[grid](*args, num_warps=num_warps, num_stages=num_stages, **constexprs)
