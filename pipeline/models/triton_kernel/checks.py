"""Checks of the Triton kernels: the first-use self-check on a device, the launch count of a training
step, and compile-only checks of the kernels for GPUs that are not on this machine.

* `self_check(device)`: a small batch of each layer kind (LSTM, BNLSTM, DDLSTM with two unequal
  domains and padded frames) through the Triton and the fused kernels, forward, every gradient and
  the evaluation forward; None when they agree within float32 tolerance (TF32's where enabled), else
  the first difference. `layers.resolve_implementation("auto")` runs it once per CUDA device.
* `count_step(step)`: the kernel launches of one call of `step` without executing the Triton kernels
  (counting mode, `launcher.counting`): Triton launches by the launch counter (exact: shapes are
  static), plus every aten operator torch.profiler records around them, nested calls included (an
  upper bound: views launch nothing).
* `record_launches(step)`, `layer_specialisations(...)` and `compile_specialisation(spec, arch)`: the
  distinct kernel variants a step launches, with the argument types, alignments and constexprs
  Triton's JIT would compile for them, compiled with `triton.compile` for an NVIDIA target (sm_80,
  sm_90: no device needed), with shared memory from the metadata and registers and spills from the
  bundled ptxas (`-v`). `python -m pipeline.models.triton_kernel.checks` prints them as a table for
  the demo's and the paper's sizes.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .launcher import TF32_VARIABLE, counting, dot_precision

# -- the first-use self-check -----------------------------------------------------------------------


def _difference(name, ours, theirs, rtol, atol) -> str | None:
    if ours is None or theirs is None:
        return None if ours is None and theirs is None else f"{name}: a gradient is missing"
    error = (ours - theirs).abs()
    bound = atol + rtol * theirs.abs()
    if not bool(torch.isfinite(ours).all()) or bool((error > bound).any()):
        return f"{name} differs from the fused kernel's by up to {float(error.max()):.3g}"
    return None


def self_check(device: torch.device) -> str | None:
    """None where the Triton kernels agree with the fused kernel on `device`, else what differs."""
    from ..layers import RecurrentLayer

    rtol, atol = (3e-2, 3e-3) if dot_precision() == "tf32" else (2e-3, 2e-4)
    devices = [device.index or 0] if device.type == "cuda" else []
    # it may be called from inside a forward under no_grad or autocast: it needs gradients, float32
    with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(device.type, enabled=False):
        torch.manual_seed(0)
        x = torch.randn(12, 6, 5, device=device)
        mask = torch.ones(12, 6, dtype=torch.bool, device=device)
        mask[0, :2] = False
        mask[9, :1] = False
        for normalisation in ("none", "bn", "ddbn"):
            layer = RecurrentLayer(5, 16, normalisation, num_domains=2, max_timesteps=4).to(device).train()
            other = copy.deepcopy(layer)
            sizes, domains = (None, (None,))  # one population: the rows' domains do not matter
            if normalisation == "ddbn":
                sizes, domains = [7, 5], (1, torch.tensor([0, 1] * 6, device=device))
            outputs = []
            for module, implementation in ((layer, "triton"), (other, "fused")):
                x_in = x.clone().requires_grad_()
                y = module(x_in, domain_sizes=sizes, mask=mask, implementation=implementation)
                (y * torch.linspace(-1, 1, y.numel(), device=device).view_as(y)).sum().backward()
                outputs.append((y.detach(), x_in.grad))
            (y_ours, dx_ours), (y_theirs, dx_theirs) = outputs
            pairs = [("the output", y_ours, y_theirs), ("the input's gradient", dx_ours, dx_theirs)]
            pairs += [(f"{name}'s gradient", p.grad, q.grad) for (name, p), q in
                      zip(layer.named_parameters(), other.parameters())]
            pairs += [(name, b, c) for (name, b), c in zip(layer.named_buffers(), other.buffers())]
            layer.eval()
            other.eval()
            with torch.no_grad():
                for domain in domains:
                    pairs.append(("the evaluation output",
                                  layer(x, domain=domain, mask=mask, implementation="triton"),
                                  other(x, domain=domain, mask=mask, implementation="fused")))
            for name, ours, theirs in pairs:
                problem = _difference(f"{normalisation}: {name}", ours, theirs, rtol, atol)
                if problem is not None:
                    return problem
    return None


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


def specialise(kernel, args, constexprs, num_warps, num_stages):
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
           repr(sorted(attrs.items())), num_warps, num_stages)
    return key, {"kernel": kernel, "signature": signature, "constexprs": constants, "attrs": attrs,
                 "num_warps": num_warps, "num_stages": num_stages}


def record_launches(step) -> list[dict]:
    """The distinct kernel specialisations one call of `step` launches (nothing is executed)."""
    with counting(record_specialisations=True) as record:
        step()
    return list(record.specialisations.values())


def layer_specialisations(kind: str, rows: int, steps: int, hidden: int, inputs: int, tf32: bool = False):
    """The kernel variants one `kind` layer launches for a training step (with padded frames, two
    domains) and an evaluation forward (per-row domains): nothing is executed."""
    from ..recurrent import create_model

    previous = os.environ.get(TF32_VARIABLE)
    os.environ[TF32_VARIABLE] = "1" if tf32 else "0"
    try:
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
    finally:
        if previous is None:
            del os.environ[TF32_VARIABLE]
        else:
            os.environ[TF32_VARIABLE] = previous


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


SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}  # bytes of shared memory one block may use


def compile_specialisation(spec: dict, arch: int) -> CompiledKernel:
    """Compile one recorded specialisation for sm_`arch`, and run ptxas -v on its PTX."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget

    source = triton.compiler.ASTSource(fn=spec["kernel"], signature=spec["signature"],
                                       constexprs=spec["constexprs"], attrs=spec["attrs"])
    options = {"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]}
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
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
    return CompiledKernel(spec["kernel"].fn.__name__, arch, constexprs, spec["num_warps"], spec["num_stages"],
                          compiled.metadata.shared, int(registers.group(1)), int(spills.group(1)),
                          int(spills.group(2)))


def main() -> None:
    """Print every kernel variant's registers, shared memory and spills at sm_80 and sm_90."""
    sizes = {"demo": (32, 50, 32, 24), "paper": (128, 200, 128, 64)}  # rows, timesteps, hidden, inputs
    print("| size | kernel (model) | variant (with padded frames) | warps, stages "
          "| sm_80 registers / shared memory / spills | sm_90 registers / shared memory / spills |")
    print("|---|---|---|---|---|---|")
    for size, shape in sizes.items():
        for kind in ("ddlstm", "bnlstm", "lstm"):
            for spec in layer_specialisations(kind, *shape):
                results = [compile_specialisation(spec, arch) for arch in (80, 90)]
                first = results[0]
                keys = ("NORM", "TRAIN", "D", "E", "BLOCK_N", "BLOCK_K")
                variant = ", ".join(f"{k}={first.constexprs[k]}" for k in keys if k in first.constexprs)
                cells = " | ".join(f"{r.registers} / {r.shared_bytes:,} B / "
                                   f"{r.spill_stores + r.spill_loads} B"
                                   for r in results)
                print(f"| {size} | {first.name} ({kind}) | {variant} | {first.num_warps}, {first.num_stages} "
                      f"| {cells} |", flush=True)


if __name__ == "__main__":
    main()
