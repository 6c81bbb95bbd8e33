"""Every Triton launch of the recurrent layers goes through `launch` here: tile sizes, the dot products'
precision, the launch counter, and a counting-only mode that skips the kernels.

Counting mode (`counting()`): each launch is counted and, if asked, its specialisation recorded (the
argument types, alignments and constexprs the JIT would compile for), but not executed; everything
around the kernels runs as usual on whatever tensors it is given, CPU tensors included. Shapes are
static, so a training step run this way makes exactly the launches it makes on a GPU; its outputs are
garbage. `checks.count_step` adds the aten operators around the kernels (torch.profiler), and
`checks.compile_specialisation` compiles the recorded kernels for a GPU that is not there.

Tile choices of the step kernels (`choose_tiles`), per layer call:

* BLOCK_H = 16 hidden units per step program (tl.dot needs every dimension >= 16), so H / 16 programs;
* BLOCK_N: the rows a program holds, a power of two >= 16. A program that computes batch statistics
  (training with a normaliser) holds every row: N <= MAX_STAT_ROWS (256; beyond it registers run out,
  and the layer falls back to the fused kernel). Otherwise rows are tiled by at most 64;
* BLOCK_K: chunks of the products' reduction dimension: 32 over K = H in the forward step; over
  K = 4 H in the backward 64 for programs with statistics, else 32; loaded one chunk ahead
  (num_stages 2). Above 128 rows 16 and 16, unpipelined (num_stages 1). Chosen with ptxas -v for
  sm_80 and sm_90 at 32, 128 and 256 rows: larger chunks or deeper pipelines cost registers (up to
  255 on sm_80) and shared memory, or spilled (the plain LSTM's backward with 64, 256 rows with 32);
* num_warps: 4 up to 64 rows, 8 above;
* maxnreg 255 (MAX_REGISTERS), for both variants.

Which kernels (`plan`, per layer call): the persistent kernels (`persistent.py`, one launch per layer and
direction) unless DDLSTM_TRITON_KERNEL=step asks for the step kernels, or the call does not fit them, and
then the step kernels with a one-time warning naming why (`choose_persistent`):

* BLOCK_N: every row where the programs compute batch statistics (at most MAX_STAT_ROWS), else row blocks
  of at most 128 (rows are independent there; each row block has its own barrier);
* BLOCK_H: 4 units (16 gate columns, the least `tl.dot` takes), so H / 4 programs per row block; 8 or 16
  where that grid would exceed the device's SM count: every program must be resident for the grid
  barrier, and one program per SM is what can be relied on (the SM count of a CUDA device, else
  ASSUMED_SMS, an A100's, the smaller of the two targets compiled for);
* BLOCK_K: chunks of the forward product's reduction over H (and of the backward partial's columns): 64,
  16 where a program's (rows, gate columns) tile passes 2,048 floats, 8 KB (256 rows, or 128 rows of 8 units);
  BLOCK_Q, the programs' partials summed per load in the backward, 8 (4 there); num_warps 4 up to 64
  rows, 8 above. Chosen with ptxas -v at 32, 128 and 256 rows for
  sm_80 and sm_90 (`checks.main`): the whole reduction in one product, or its slice of W_h held in
  registers as a tensor-core operand (64 registers per thread per copy at H = 128, two copies for tf32x3),
  spilled; so W_h's slice (8 KB at H = 128) is re-read every timestep, from the SM's L1 after the first;
* num_stages 1: the time loop must not be software-pipelined (h_t is loaded only after the barrier).

Precision (`dot_precision`, read at every layer call): DDLSTM_TRITON_PRECISION = tf32x3 (the default:
three TF32 tensor-core products per product, error-compensated, float32's accuracy in our measurements),
tf32 (one product, ~1e-3 relative error) or ieee (float32 FMAs, no tensor cores). DDLSTM_TRITON_TF32=1,
where DDLSTM_TRITON_PRECISION is not set, means tf32.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from dataclasses import dataclass

MAX_STAT_ROWS = 256
BLOCK_H = 16
PRECISION_VARIABLE = "DDLSTM_TRITON_PRECISION"
PRECISIONS = ("tf32x3", "tf32", "ieee")  # the first is the default
TF32_VARIABLE = "DDLSTM_TRITON_TF32"  # the older switch: 1 means tf32 where PRECISION_VARIABLE is unset
KERNEL_VARIABLE = "DDLSTM_TRITON_KERNEL"
KERNELS = ("persistent", "step")  # the first is the default
ASSUMED_SMS = 108  # an A100's SMs: the grid limit where no CUDA device can be asked
PERSISTENT_BLOCK_H = (4, 8, 16)  # units per persistent program, the first that keeps the grid resident
# ptxas may give a recurrent program every register a thread can have (at most 8 warps: 255 x 256 threads
# fit the 64K of an SM): their grids are a few dozen programs, one per SM, so left to its own heuristic ptxas
# aims at an occupancy that is never used, and spilled
MAX_REGISTERS = 255

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
    num_warps: int
    num_stages: int  # software pipelining of the step kernels' product loops (2: loads one chunk ahead)


def choose_tiles(rows: int, hidden: int, statistics: bool) -> Tiles:
    """Tiles for N = `rows`, H = `hidden`; `statistics`: the step programs reduce over every row."""
    padded = max(16, next_power_of_2(rows))
    if statistics and padded > MAX_STAT_ROWS:
        raise ValueError(f"{rows} rows: a Triton step program holds at most {MAX_STAT_ROWS} rows")
    block_n = padded if statistics else min(padded, 64)
    if block_n > 128:  # 256 rows: the smallest chunks, unpipelined, to stay within 255 registers
        return Tiles(block_n=block_n, block_h=BLOCK_H, block_k_forward=16, block_k_backward=16, num_warps=8,
                     num_stages=1)
    return Tiles(block_n=block_n, block_h=BLOCK_H, block_k_forward=min(32, max(16, next_power_of_2(hidden))),
                 block_k_backward=64 if statistics else 32, num_warps=4 if block_n <= 64 else 8,
                 num_stages=2)


def dot_precision() -> str:
    """The products' precision, from DDLSTM_TRITON_PRECISION (read at every call): see the module's doc."""
    value = os.environ.get(PRECISION_VARIABLE)
    if value is None:
        return "tf32" if os.environ.get(TF32_VARIABLE, "0") == "1" else PRECISIONS[0]
    if value not in PRECISIONS:
        raise ValueError(f"{PRECISION_VARIABLE}={value!r}: expected one of {', '.join(PRECISIONS)}")
    return value


def kernel_variant() -> str:
    """"persistent" or "step", from DDLSTM_TRITON_KERNEL (read at every call; persistent by default)."""
    value = os.environ.get(KERNEL_VARIABLE, KERNELS[0])
    if value not in KERNELS:
        raise ValueError(f"{KERNEL_VARIABLE}={value!r}: expected one of {', '.join(KERNELS)}")
    return value


@dataclass(frozen=True)
class PersistentTiles:
    block_n: int  # rows per program
    block_h: int  # hidden units per program (4 block_h gate columns)
    block_k: int  # chunk of H in the forward product's reduction and the backward partial's columns
    block_q: int  # programs' partials summed per load in the backward
    programs: int  # P = cdiv(H, block_h), the grid's first dimension
    row_blocks: int  # cdiv(N, block_n), its second
    num_warps: int

    @property
    def grid(self) -> tuple[int, int]:
        return (self.programs, self.row_blocks)


def choose_persistent(rows: int, hidden: int, statistics: bool, max_programs: int) -> PersistentTiles | str:
    """Tiles of the persistent kernels for N = `rows`, H = `hidden`, at most `max_programs` programs (the
    SMs), or why they do not fit (the step kernels take the call)."""
    padded = max(16, next_power_of_2(rows))
    if statistics and padded > MAX_STAT_ROWS:
        return f"{rows} rows: a program computing batch statistics holds at most {MAX_STAT_ROWS}"
    block_n = padded if statistics else min(padded, 128)
    row_blocks = cdiv(rows, block_n)
    for block_h in PERSISTENT_BLOCK_H:
        programs = cdiv(hidden, block_h)
        if programs * row_blocks <= max_programs:
            wide = block_n * block_h > 512  # (rows, gate columns) tiles of more than 2,048 floats (8 KB)
            return PersistentTiles(block_n=block_n, block_h=block_h,
                                   block_k=min(16 if wide else 64, max(16, next_power_of_2(hidden))),
                                   block_q=min(4 if wide else 8, next_power_of_2(programs)),
                                   programs=programs, row_blocks=row_blocks,
                                   num_warps=4 if block_n <= 64 else 8)
    return (f"a grid of {cdiv(hidden, PERSISTENT_BLOCK_H[-1]) * row_blocks} programs would exceed the "
            f"{max_programs} that can be resident at once (one per SM)")


def max_resident_programs(device) -> int:
    """Programs a grid barrier can rely on being resident: one per SM."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return ASSUMED_SMS


@dataclass(frozen=True)
class Plan:
    """Which kernels run a layer call, at which tiles and precision."""

    kernel: str  # "persistent" or "step"
    tiles: PersistentTiles | Tiles
    precision: str
    emulate: bool  # the interpreter: TF32 rounding reproduced in the kernels (`kernels._dot`)
    sync: bool  # the persistent kernels run the whole sequence in one launch behind grid barriers
    reason: str | None = None  # why the step kernels run where the persistent ones were asked for


def plan(rows: int, hidden: int, statistics: bool, device, interpreted: bool) -> Plan:
    """The kernels, tiles and precision of a layer call (N = `rows`, H = `hidden`)."""
    precision = dot_precision()
    reason = None
    if kernel_variant() == "persistent":
        tiles = choose_persistent(rows, hidden, statistics, max_resident_programs(device))
        if not isinstance(tiles, str):
            return Plan("persistent", tiles, precision, emulate=interpreted, sync=not interpreted)
        reason = tiles
    return Plan("step", choose_tiles(rows, hidden, statistics), precision, emulate=interpreted, sync=False,
                reason=reason)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# -- counting ---------------------------------------------------------------------------------------


class LaunchRecord:
    """What one counting-mode run launched: a count, and each distinct specialisation once."""

    def __init__(self, record_specialisations: bool):
        self.launches = 0
        self.by_kernel: dict[str, int] = {}
        self.specialisations: dict | None = {} if record_specialisations else None

    def add(self, kernel, grid, args, constexprs, options):
        self.launches += 1
        name = kernel.__name__ if hasattr(kernel, "__name__") else kernel.fn.__name__
        self.by_kernel[name] = self.by_kernel.get(name, 0) + 1
        if self.specialisations is not None:
            from .checks import specialise  # only the compile-only checks need it

            key, value = specialise(kernel, args, constexprs, options)
            value = self.specialisations.setdefault(key, value)
            value["programs"] = max(value.get("programs", 0), math.prod(grid))  # the largest grid launched


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


def launch(kernel, grid: tuple, *args, num_warps: int, num_stages: int = 2, maxnreg: int | None = None,
           **constexprs) -> None:
    """Launch `kernel` on `grid` (or, in counting mode, count it and do nothing); `maxnreg`: the registers
    per thread ptxas may use (left to its own heuristic where None)."""
    _totals["launches"] += 1
    record = getattr(_state, "record", None)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    if maxnreg is not None:
        options["maxnreg"] = maxnreg
    if record is not None:
        record.add(kernel, grid, args, constexprs, options)
        return
    kernel[grid](*args, **options, **constexprs)


# -- the grid barriers' failure count ---------------------------------------------------------------

_status: dict = {}


def barrier_status(device):
    """(1,) int32 on `device`: the persistent kernels' grid barriers that gave up waiting (a grid not
    resident at once), accumulated since the process started; read by `barrier_failures`."""
    import torch

    key = str(device)
    if key not in _status:  # made on the first, eager call (a captured graph's warm-up steps come first)
        _status[key] = torch.zeros(1, dtype=torch.int32, device=device)
    return _status[key]


def barrier_failures(device) -> int:
    """How many grid barriers on `device` gave up waiting so far (a host synchronisation)."""
    key = str(device)
    return int(_status[key].item()) if key in _status else 0
