"""Whether the Triton kernels can be trusted on a device: what their first use needs, and how far their
results are from a float64 reference.

* `launcher_build_problem()`: Triton compiles a small C launcher for each kernel on first use, with a C
  compiler and Python's headers; None where a test file including Python.h compiles, else what is
  missing (one line). `preflight(device)` lists that and the rest a device run needs (Triton, CUDA,
  ptxas) as (what, found, problem) rows, for `benchmarks/gpu.py`.
* `compare(...)`: one training step (forward and backward) and an evaluation forward of a model through
  the Triton kernels in float32, at the precision and kernel variant the environment selects, against the
  fused kernel in float64 on the same device: the relative error max |ours - reference| / max |reference|
  of the output, the input's and every parameter's gradient, every buffer (running statistics) and the
  evaluation output. `TOLERANCE[precision]` bounds them.
* `self_check(device, normalisation, rows, hidden, training)`: `compare` for one layer of that kind at those
  rows and hidden units (the shape class a call will run: its tiles, warps and precision), padded and
  unpadded, over a few timesteps more than the running statistics' table; None within tolerance, else
  the worst result. `layers` runs it once per process and shape class (`shape_class`) before "auto" uses
  the kernels.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import torch

from .launcher import dot_precision, plan

# Largest relative error (max |error| / max |reference|) of any result of `compare` against float64, by
# precision: ~10x the worst the interpreter measured at the demo's size with TF32's rounding reproduced
# (`python -m pipeline.models.triton_kernel.selfcheck`: 5.8e-5 for ieee and tf32x3, the evaluation output,
# as large for the fused kernel in float32; 3.3e-3 for tf32, alpha's gradient), so that a kernel bug
# (errors of order 1) cannot pass and rounding cannot fail.
TOLERANCE = {"ieee": 5e-4, "tf32x3": 5e-4, "tf32": 3e-2}


# -- what a first launch needs ------------------------------------------------------------------------


def _python_include() -> str:
    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":  # as Triton's launcher build does (Debian's system Python)
        scheme = "posix_prefix"
    return sysconfig.get_paths(scheme=scheme)["include"]


def _c_compiler() -> str | None:
    """The C compiler Triton's launcher build looks for (`triton.runtime.build`): $CC, else gcc or clang."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")


def launcher_build_problem() -> str | None:
    """None where Triton can build its C launcher (a compiler that compiles `#include <Python.h>`), else
    why."""
    from triton import knobs

    if knobs.build.impl is not None:  # a custom build function replaces the compiler
        return None
    compiler = _c_compiler()
    if compiler is None:
        return "no C compiler (CC, gcc or clang on PATH): Triton builds its launcher with one"
    if shutil.which(compiler) is None:
        return f"the C compiler {compiler!r} (CC or gcc / clang on PATH) is not there"
    include = _python_include()
    if not Path(include, "Python.h").exists():
        return f"Python's headers are missing ({include}/Python.h; e.g. the python3-dev package)"
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "probe.c")
        source.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        result = subprocess.run([compiler, "-fsyntax-only", f"-I{include}", str(source)], capture_output=True,
                                text=True, check=False, timeout=60)
    if result.returncode != 0:
        return f"{compiler} cannot compile a file including Python.h: {' '.join(result.stderr.split())[:200]}"
    return None


def preflight(device: torch.device | None = None) -> list[tuple[str, str, str | None]]:
    """(what, what was found, the problem or None) for everything a device run of the kernels needs."""
    rows = []
    try:
        import triton

        rows.append(("Triton", f"{triton.__version__} ({Path(triton.__file__).parent})", None))
    except ImportError as error:
        return [("Triton", "-", f"cannot be imported ({error})")]
    try:
        problem = launcher_build_problem()
    except Exception as error:  # noqa: BLE001  (each row names its own failure)
        problem = f"{type(error).__name__}: {error}"
    rows.append(("C compiler and Python headers (Triton's launcher)", f"{_c_compiler()}; {_python_include()}",
                 problem))
    from triton import knobs

    ptxas = knobs.nvidia.ptxas.path
    rows.append(("ptxas", ptxas, None if ptxas and Path(ptxas).exists() else "not found"))
    if device is not None and device.type == "cuda":
        if not torch.cuda.is_available():
            rows.append(("CUDA", "-", "torch.cuda.is_available() is False"))
        else:
            props = torch.cuda.get_device_properties(device)
            found = (f"{props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, "
                     f"CUDA {torch.version.cuda}")
            rows.append(("CUDA device", found, None))
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    rows.append(("TRITON_INTERPRET", "1 (kernels run on CPU tensors)" if interpret else "unset", None))
    return rows


# -- against float64 ------------------------------------------------------------------------------------


def shape_class(rows: int, hidden: int, statistics: bool, device: torch.device) -> tuple:
    """What a call compiles to, as a key: the kernel variant, its tiles and warps, the precision."""
    chosen = plan(rows, hidden, statistics, device, interpreted=False)
    return chosen.kernel, chosen.tiles, chosen.precision


def _relative(ours: torch.Tensor | None, reference: torch.Tensor | None) -> float:
    if ours is None or reference is None:
        return 0.0 if ours is None and reference is None else float("inf")
    if not bool(torch.isfinite(ours).all()):
        return float("inf")
    if not reference.numel():
        return 0.0
    scale = float(reference.abs().max())
    return float((ours.double() - reference.double()).abs().max()) / max(scale, 1e-30)


def compare(kind: str, rows: int, steps: int, hidden: int, inputs: int, layers: int, device: torch.device,
            masked: bool, training: bool = True, max_timesteps: int | None = None, seed: int = 0,
            implementation: str = "triton") -> dict:
    """{result: relative error} of the Triton kernels (float32) against the fused kernel (float64): see the
    module's doc. Two domains of rows // 2 and the rest; `masked`: some windows padded at the start;
    `implementation`: what runs in float32 ("fused": float32's own error, the baseline)."""
    from ..recurrent import create_model

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(device.type, enabled=False):
        torch.manual_seed(seed)
        reference = create_model(kind, inputs, hidden, layers, max_timesteps=max_timesteps or steps,
                                 implementation="fused").to(device).double()
        ours = copy.deepcopy(reference).float()
        ours.implementation = implementation
        x = torch.randn(rows, steps, inputs, device=device, dtype=torch.float64)
        mask = None
        if masked:
            mask = torch.ones(rows, steps, dtype=torch.bool, device=device)
            mask[::5, : max(1, steps // 4)] = False  # short windows, padded at the start
            mask[rows // 2:, steps - 1] = False  # the second domain without a real row at the last step
        sizes = [rows // 2, rows - rows // 2]
        errors = {}
        if training:
            weight = torch.randn(rows, steps, hidden, device=device, dtype=torch.float64)
            results = []
            for model, dtype in ((reference, torch.float64), (ours, torch.float32)):
                model.train()
                x_in = x.detach().to(dtype, copy=True).requires_grad_()
                out = model(x_in, domain_sizes=sizes, mask=mask)
                (out * weight.to(dtype)).sum().backward()
                results.append((out.detach(), x_in.grad))
            (out_r, dx_r), (out_o, dx_o) = results
            errors["output"] = _relative(out_o, out_r)
            errors["input gradient"] = _relative(dx_o, dx_r)
            for (name, p_r), p_o in zip(reference.named_parameters(), ours.parameters()):
                errors[f"{name} gradient"] = _relative(p_o.grad, p_r.grad)
        else:  # population statistics worth using, the same in both
            with torch.no_grad():
                reference.train()
                reference(x, domain_sizes=sizes, mask=mask)
                ours.load_state_dict(reference.state_dict())
        for (name, b_r), b_o in zip(reference.named_buffers(), ours.buffers()):
            errors[name] = _relative(b_o, b_r)
        reference.eval()
        ours.eval()
        domains = (0, torch.arange(rows, device=device) % 2) if kind == "ddlstm" else (0,)
        with torch.no_grad():
            for k, domain in enumerate(domains):
                errors[f"evaluation{' (per-row domains)' if k else ''}"] = _relative(
                    ours(x.float(), domain=domain, mask=mask), reference(x, domain=domain, mask=mask))
    return errors


def worst(errors: dict) -> tuple[str, float]:
    """The result with the largest relative error, and that error."""
    name = max(errors, key=errors.get)
    return name, errors[name]


KINDS = {"none": "lstm", "bn": "bnlstm", "ddbn": "ddlstm"}


def self_check(device: torch.device, normalisation: str = "ddbn", rows: int = 12, hidden: int = 16,
               training: bool = True, steps: int = 6) -> str | None:
    """None where one layer of this kind at these rows and hidden units agrees with float64 within
    TOLERANCE, padded and unpadded (`compare`, the running statistics' table shorter than the sequence);
    else the worst result, in one line."""
    precision = dot_precision()
    for masked in (True, False):
        errors = compare(KINDS[normalisation], rows, steps, hidden, 5, 1, device, masked, training,
                         max_timesteps=steps - 2)
        name, error = worst(errors)
        if not error <= TOLERANCE[precision]:
            return (f"{normalisation} {'padded' if masked else 'unpadded'}: {name} differs from float64 by "
                    f"{error:.3g} relative, more than the {TOLERANCE[precision]:g} {precision} allows")
    return None


def main(argv=None) -> None:
    """Print the relative errors of `compare` for each precision and the fused kernel in float32."""
    import argparse

    from .launcher import PRECISION_VARIABLE, PRECISIONS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--kind", default="ddlstm", choices=sorted(KINDS.values()))
    parser.add_argument("--size", nargs=5, type=int, default=[32, 50, 32, 24, 2], metavar=("ROWS", "STEPS",
                        "HIDDEN", "INPUTS", "LAYERS"), help="default: the demo's size, 2 layers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows, steps, hidden, inputs, layers = args.size
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    print(f"relative error against the fused kernel in float64: {args.kind}, {rows} rows, {steps} steps, "
          f"{hidden} units, {inputs} inputs, {layers} layers, max_timesteps {steps - 5}, on {device}"
          + (" (Triton interpreter, TF32 rounding reproduced)" if interpreted else ""))
    print("| float32 kernel | padded | output | worst gradient | worst running statistic | evaluation "
          "| worst |")
    print("|---|---|---|---|---|---|---|")
    variants = [("fused", None), *[("triton", precision) for precision in PRECISIONS]]
    previous = os.environ.get(PRECISION_VARIABLE)
    try:
        for implementation, precision in variants:
            if precision is not None:
                os.environ[PRECISION_VARIABLE] = precision
            for masked in (True, False):
                errors = compare(args.kind, rows, steps, hidden, inputs, layers, device, masked,
                                 max_timesteps=steps - 5, implementation=implementation)
                gradients = {k: v for k, v in errors.items() if k.endswith("gradient")}
                statistics = {k: v for k, v in errors.items() if "running" in k}
                evaluation = max(v for k, v in errors.items() if k.startswith("evaluation"))
                name, error = worst(errors)
                label = "fused" if precision is None else f"triton, {precision}"
                print(f"| {label} | {'yes' if masked else 'no'} | {errors['output']:.1e} | "
                      f"{max(gradients.values()):.1e} ({worst(gradients)[0]}) | "
                      f"{max(statistics.values()):.1e} | {evaluation:.1e} | {error:.1e} ({name}) |",
                      flush=True)
    finally:
        if previous is None:
            os.environ.pop(PRECISION_VARIABLE, None)
        else:
            os.environ[PRECISION_VARIABLE] = previous


if __name__ == "__main__":
    main()
