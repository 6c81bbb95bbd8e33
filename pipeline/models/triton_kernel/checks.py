"""Checks of the Triton kernels that need no GPU: the launch count of a training step, and compile-only
checks of the kernels for GPUs that are not on this machine (the device checks are in `selfcheck.py`).

* `count_step(step)`: the kernel launches of one call of `step` without executing the Triton kernels
  (counting mode, `launcher.counting`): Triton launches by the launch counter (exact: shapes are
  static), plus every aten operator torch.profiler records around them, nested calls included (an
  upper bound: views launch nothing).
* `record_launches(step)`, `layer_specialisations(...)` and `compile_specialisation(spec, arch)`: the
  distinct kernel variants a step launches, with the argument types, alignments, constexprs and launch
  options Triton's JIT would compile for them and the largest grid each is launched on, compiled with
  `triton.compile` for an NVIDIA target (sm_80, sm_90: no device needed), with shared memory from the
  metadata, registers and spills from the bundled ptxas (`-v`), and counts of some PTX instructions
  (tensor-core products, float32 FMAs, the barriers' atomics).
  `python -m pipeline.models.triton_kernel.checks` prints them as a table for the demo's and the paper's
  sizes.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .launcher import KERNEL_VARIABLE, PRECISION_VARIABLE, counting

# -- counting a step's launches ---------------------------------------------------------------------


def count_step(step) -> dict:
    """Launches of one call of `step` (whose layers use implementation="triton"), the Triton kernels
    skipped: {"triton": Triton launches, "aten": aten operators, "total", "by_kernel"}."""
    from torch.profiler import ProfilerActivity, profile

    with counting():
        step()  # first call: lazy initialisations, which a training loop pays once
    with counting() as record, profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    aten = sum(event.count for event in prof.key_averages() if event.key.startswith("aten::"))
    return {"triton": record.launches, "aten": aten, "total": record.launches + aten,
            "by_kernel": dict(record.by_kernel)}


# -- compile-only -----------------------------------------------------------------------------------


def specialise(kernel, args, constexprs, options):
    """(key, what triton.compile needs) for a launch, as Triton's JIT specialises it: argument types,
    16-byte alignment and divisibility by 16, integers equal to 1 as constants, the constexprs."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.nvidia.compiler import CUDABackend

    values = list(args) + [constexprs[p.name] for p in kernel.params[len(args):]]
    signature, constants, attrs = {}, {}, {}
    for index, (param, value) in enumerate(zip(kernel.params, values)):
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constants[param.name] = value
            continue
        kind, spec = native_specialize_impl(CUDABackend, value, False, not param.do_not_specialize,
                                            not param.do_not_specialize_on_alignment)
        signature[param.name] = kind
        if kind == "constexpr":
            constants[param.name] = spec
        elif isinstance(spec, str) and spec:
            attrs[(index,)] = CUDABackend.parse_attr(spec)
    key = (kernel.fn.__name__, tuple(signature.items()), tuple(sorted(constants.items())),
           repr(sorted(attrs.items())), tuple(sorted(options.items())))
    return key, {"kernel": kernel, "signature": signature, "constexprs": constants, "attrs": attrs,
                 "num_warps": options["num_warps"], "num_stages": options["num_stages"], "options": options}


def record_launches(step) -> list[dict]:
    """The distinct kernel specialisations one call of `step` launches (nothing is executed)."""
    with counting(record_specialisations=True) as record:
        step()
    return list(record.specialisations.values())


@contextlib.contextmanager
def variant(precision: str | None = None, kernel: str | None = None):
    """DDLSTM_TRITON_PRECISION / DDLSTM_TRITON_KERNEL set to these values inside (None: left as they are)."""
    values = {PRECISION_VARIABLE: precision, KERNEL_VARIABLE: kernel}
    previous = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def layer_specialisations(kind: str, rows: int, steps: int, hidden: int, inputs: int,
                          precision: str = "tf32x3", kernel: str = "persistent"):
    """The kernel variants one `kind` layer launches for a training step (with padded frames, two
    domains) and an evaluation forward (per-row domains): nothing is executed."""
    from ..recurrent import create_model

    with variant(precision, kernel):
        torch.manual_seed(0)
        model = create_model(kind, inputs, hidden, 1, max_timesteps=steps, implementation="triton")
        x, mask = torch.randn(rows, steps, inputs), torch.ones(rows, steps, dtype=torch.bool)
        mask[0, :2] = False

        def step():
            model.train()
            model(x, domain_sizes=[rows // 2, rows - rows // 2], mask=mask).sum().backward()
            model.eval()
            with torch.no_grad():
                model(x, domain=torch.arange(rows) % 2, mask=mask)

        return record_launches(step)


@dataclass
class CompiledKernel:
    name: str
    arch: int
    constexprs: dict
    num_warps: int
    num_stages: int
    shared_bytes: int
    registers: int
    spill_stores: int
    spill_loads: int
    instructions: dict  # counts of some PTX instructions: tensor-core products, float32 FMAs, atomics


INSTRUCTIONS = {"mma": "mma.sync.aligned", "wgmma": "wgmma.mma_async", "fma": "fma.rn.f32",
                "round": "cvt.rna.tf32.f32", "atom": "atom.global", "acquire": "ld.global.gpu.acquire"}


SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}  # bytes of shared memory one block may use


def compile_specialisation(spec: dict, arch: int) -> CompiledKernel:
    """Compile one recorded specialisation for sm_`arch`, and run ptxas -v on its PTX."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget

    source = triton.compiler.ASTSource(fn=spec["kernel"], signature=spec["signature"],
                                       constexprs=spec["constexprs"], attrs=spec["attrs"])
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(spec["options"]))
    ptxas = knobs.nvidia.ptxas.path
    target = re.search(r"^\.target\s+(sm_\w+)", compiled.asm["ptx"], re.MULTILINE).group(1)  # sm_90a on sm_90
    with tempfile.TemporaryDirectory() as folder:
        ptx = Path(folder) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        command = [ptxas, "-v", f"--gpu-name={target}", str(ptx), "-o", str(Path(folder) / "kernel.cubin")]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed for {target}: {(result.stdout + result.stderr)[-800:]}")
    report = result.stdout + result.stderr
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    if registers is None or spills is None:
        raise RuntimeError(f"unexpected ptxas output: {report[-500:]}")
    constexprs = {k: v for k, v in spec["constexprs"].items() if isinstance(k, str) and k.isupper()}
    ptx_text = compiled.asm["ptx"]
    counts = {name: ptx_text.count(text) for name, text in INSTRUCTIONS.items()}
    return CompiledKernel(spec["kernel"].fn.__name__, arch, constexprs, spec["num_warps"], spec["num_stages"],
                          compiled.metadata.shared, int(registers.group(1)), int(spills.group(1)),
                          int(spills.group(2)), counts)


def main() -> None:
    """Print every kernel variant of both recurrences at the default precision (and the persistent
    kernels' at the others): registers, shared memory, spills, tensor-core products, grid, sm_80 and sm_90."""
    sizes = {"demo": (32, 50, 32, 24), "paper": (128, 200, 128, 64), "largest": (256, 20, 128, 64)}
    print("| size | kernel (model) | variant (with padded frames) | precision | warps | programs "
          "| sm_80 registers / shared memory / spills / tensor-core products "
          "| sm_90 registers / shared memory / spills / tensor-core products |")
    print("|---|---|---|---|---|---|---|---|")
    for size, shape in sizes.items():
        for kernel, precision in (("persistent", "tf32x3"), ("persistent", "tf32"), ("persistent", "ieee"),
                                  ("step", "tf32x3")):
            for kind in ("ddlstm", "bnlstm", "lstm"):
                for spec in layer_specialisations(kind, *shape, precision=precision, kernel=kernel):
                    name = spec["kernel"].fn.__name__
                    if precision != "tf32x3" and not name.startswith("sequence"):
                        continue  # the other kernels have no products
                    results = [compile_specialisation(spec, arch) for arch in (80, 90)]
                    first = results[0]
                    keys = ("NORM", "TRAIN", "D", "E", "BLOCK_N", "BLOCK_H", "BLOCK_K")
                    variant = ", ".join(f"{k}={first.constexprs[k]}" for k in keys if k in first.constexprs)
                    cells = " | ".join(f"{r.registers} / {r.shared_bytes:,} B / "
                                       f"{r.spill_stores + r.spill_loads} B / "
                                       f"{r.instructions['mma'] + r.instructions['wgmma']}" for r in results)
                    products = precision if name.startswith(("sequence", "step")) else "-"
                    print(f"| {size} | {name} ({kind}) | {variant} | {products} | {first.num_warps} "
                          f"| {spec['programs']} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
