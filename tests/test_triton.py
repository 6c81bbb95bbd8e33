"""The Triton kernels (implementation="triton", pipeline/models/triton_kernel) on a machine without a GPU.

* Under Triton's interpreter (TRITON_INTERPRET=1, in a subprocess: the interpreter is chosen when the
  kernels are decorated, and this process must not depend on what imported what before): forward,
  every gradient and the running statistics equal the reference cell's (float64) to float32
  precision; evaluation mode; the fallbacks to the fused kernel; a whole training step equals the
  fused kernel's. The subprocess is this file run as a script; each case reports back by name.
* Compile-only: every kernel variant a training step and an evaluation launch, compiled for sm_80
  and sm_90 with the argument types and constexprs the launcher picks: shared memory within the
  target's limit, no register spills (ptxas -v).
* The launch count of a paper-size DDLSTM training step (counting mode), the "auto" selection's
  fallbacks, and benchmarks/gpu.py's smoke mode.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# -- the interpreter side: run as a script ----------------------------------------------------------------


def _close(ours, ref, what):
    """float32 against float64: relative 1e-4, absolute 2e-5 of the tensor's scale."""
    ours, ref = ours.detach().double(), ref.detach().double()
    scale = 1.0 + (float(ref.abs().max()) if ref.numel() else 0.0)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=2e-5 * scale, msg=lambda m: f"{what}: {m}")


def _pair(cls, layers=3, hidden=16, **kwargs):
    """The same model twice: the reference cell in float64, the Triton kernels in float32."""
    torch.manual_seed(0)
    ref = cls(5, hidden, layers, implementation="reference", max_timesteps=4, **kwargs).double()
    ours = copy.deepcopy(ref).float()
    ours.implementation = "triton"
    return ref, ours


def _mask(batch, steps, domain0_rows=0):
    mask = torch.ones(batch, steps, dtype=torch.bool)
    mask[0, :3] = False  # left padding, as short windows have
    mask[batch - 2, :2] = False
    mask[batch - 1, :1] = False
    mask[:domain0_rows, 0] = False  # every row of the first domain padded at t = 0: its averages stay
    return mask


def _learnable(ref, ours):
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "gamma" in name or "beta" in name:
                p.uniform_(0.05, 0.3)
    ours.load_state_dict(ref.state_dict())


def _train_and_compare(ref, ours, sizes, mask, batch=12, steps=7):
    """One forward and backward of both: outputs, the input's and every parameter's gradient, buffers."""
    dtype = ours.layers[0].weight_ih.dtype
    x = torch.randn(batch, steps, 5, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.to(dtype).requires_grad_()
    y_ref, y_ours = ref(x_ref, domain_sizes=sizes, mask=mask), ours(x_ours, domain_sizes=sizes, mask=mask)
    _close(y_ours, y_ref, "output")
    grad = torch.randn_like(y_ref)
    (y_ref * grad).sum().backward()
    (y_ours * grad.to(dtype)).sum().backward()
    _close(x_ours.grad, x_ref.grad, "the input's gradient")
    for (name, p_ref), p_ours in zip(ref.named_parameters(), ours.parameters()):
        assert (p_ours.grad is None) == (p_ref.grad is None), f"{name}: a gradient is missing"
        if p_ref.grad is not None:
            _close(p_ours.grad, p_ref.grad, f"{name}'s gradient")
    for (name, b_ref), b_ours in zip(ref.named_buffers(), ours.buffers()):
        _close(b_ours, b_ref, name)


def _evaluate_and_compare(ref, ours, mask, domains):
    ref.eval()
    ours.eval()
    x = torch.randn(12, 7, 5, dtype=torch.float64)
    for domain in domains:
        with torch.no_grad():
            _close(ours(x.float(), domain=domain, mask=mask), ref(x, domain=domain, mask=mask),
                   f"evaluation with domain={domain}")


PER_ROW = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0])


def _case_ddlstm_unequal_domains_masked_learnable_affine():
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, learnable_affine=True)
    _learnable(ref, ours)
    with torch.no_grad():  # layer 1's first alpha below its bound: clamped, no gradient
        ref.layers[1].alpha.copy_(torch.tensor([0.3, 0.9]))
        ours.layers[1].alpha.copy_(torch.tensor([0.3, 0.9]))
    mask = _mask(12, 7, domain0_rows=5)
    _train_and_compare(ref, ours, [5, 7], mask)
    assert float(ours.layers[1].alpha.grad[0]) == 0.0 and float(ours.layers[1].alpha.grad[1]) != 0.0
    _evaluate_and_compare(ref, ours, mask, (1, PER_ROW))


def _case_ddlstm_equal_domains():
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, layers=2)
    _train_and_compare(ref, ours, [8, 8], None, batch=16, steps=5)
    _evaluate_and_compare(ref, ours, None, (0,))


def _case_ddlstm_hidden_size_not_a_multiple_of_16():
    """20 units: the second program's units and the products' last chunk are partly masked."""
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, layers=2, hidden=20)
    mask = _mask(12, 7)
    _train_and_compare(ref, ours, [7, 5], mask)
    _evaluate_and_compare(ref, ours, mask, (0, PER_ROW))


def _case_ddlstm_one_domain_present():
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, layers=2)
    _train_and_compare(ref, ours, [12, 0], _mask(12, 7))


def _case_ddlstm_three_domains_two_present():
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, layers=2, num_domains=3)
    _train_and_compare(ref, ours, [5, 0, 7], _mask(12, 7))  # alphas (0, 2) and (2, 0): positions 1 and 4
    assert float(ours.layers[0].alpha.grad.abs()[[1, 4]].min()) > 0


def _case_three_domains_present_fall_back_to_fused():
    from pipeline.models import DDLSTM

    ref, ours = _pair(DDLSTM, layers=2, num_domains=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_compare(ref, ours, [4, 4, 4], None)
    assert any("3 domains are present" in str(w.message) and "fused kernel" in str(w.message) for w in caught)


def _case_float64_falls_back_to_fused():
    from pipeline.models import BNLSTM

    ref, ours = _pair(BNLSTM, layers=1)
    ours.double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_compare(ref, ours, None, None)
    assert any("float32" in str(w.message) for w in caught)


def _case_bnlstm_masked_learnable_affine():
    from pipeline.models import BNLSTM

    ref, ours = _pair(BNLSTM, learnable_affine=True)
    _learnable(ref, ours)
    mask = _mask(12, 7)
    _train_and_compare(ref, ours, None, mask)
    _evaluate_and_compare(ref, ours, mask, (0,))


def _case_lstm_masked_and_unmasked():
    from pipeline.models import LSTM

    for mask in (_mask(12, 7), None):
        ref, ours = _pair(LSTM, layers=2)
        _train_and_compare(ref, ours, None, mask)
        _evaluate_and_compare(ref, ours, mask, (0,))


def _case_train_sequence_interface_equals_fused():
    """`train_sequence`, the interface shared with fused.py: outputs, statistics and gradients."""
    from pipeline.models import fused, triton_kernel
    from pipeline.models.contribution import contribution_directions
    from pipeline.models.layers import RecurrentLayer
    from pipeline.models.stepnorm import NormSpec

    torch.manual_seed(1)
    layer = RecurrentLayer(5, 16, "ddbn", num_domains=2, max_timesteps=4, learnable_affine=True)
    sizes, mask = [5, 7], _mask(12, 6)
    x = torch.randn(12, 6, 5)
    results = []
    for module in (triton_kernel, fused):
        layer.zero_grad(set_to_none=True)
        layer.norm_x.record_alpha_bounds(sizes)
        with torch.no_grad():
            weights, _ = layer.norm_x.contribution_weights(sizes)
        alpha = layer.norm_x.effective_alpha()
        directions, owners, indices = contribution_directions(alpha, sizes)
        spec = NormSpec(eps=1e-5, blocks=[(0, 5), (5, 12)], weights=weights, directions=directions,
                        owners=owners, alpha_indices=indices)
        x_in = x.clone().requires_grad_()
        affine = [getattr(getattr(layer, side), name) for side in ("norm_x", "norm_h", "norm_c")
                  for name in ("gamma", "beta")]
        out, stats = module.train_sequence(x_in, layer.weight_ih, layer.weight_hh, layer.bias, alpha, *affine,
                                           mask, spec)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out, *stats, x_in.grad, *[p.grad for p in layer.parameters()]])
    for k, (ours, theirs) in enumerate(zip(*results)):
        _close(ours, theirs, f"result {k}")


def _case_training_step_equals_fused():
    """Forward, loss, backward, SGD update and alpha projection of each model, against the fused kernel."""
    from pipeline.models import BNLSTM, DDLSTM, LSTM

    for cls in (DDLSTM, BNLSTM, LSTM):
        torch.manual_seed(2)
        models = []
        for implementation in ("fused", "triton"):
            body = cls(5, 16, 2, max_timesteps=4, implementation=implementation)
            head = torch.nn.Linear(16, 4)
            models.append((body, head))
        models[1][0].load_state_dict(models[0][0].state_dict())
        models[1][1].load_state_dict(models[0][1].state_dict())
        x, y, mask = torch.randn(12, 6, 5), torch.randint(0, 4, (12, 6)), _mask(12, 6)
        losses = []
        for body, head in models:
            params = list(body.parameters()) + list(head.parameters())
            logits = head(body(x, domain_sizes=[5, 7], mask=mask))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), y.reshape(-1))
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-0.5)
            body.constrain_alphas_()
            losses.append(loss)
        _close(losses[1], losses[0], f"{cls.__name__}: loss")
        for (name, a), b in zip(models[0][0].state_dict().items(), models[1][0].state_dict().values()):
            _close(b, a, f"{cls.__name__}: {name} after the update")


CASES = {name.removeprefix("_case_"): case for name, case in sorted(globals().items())
         if name.startswith("_case_")}


def _run_cases(report_path: str) -> None:
    torch.set_num_threads(1)
    from pipeline.models import triton_kernel

    assert triton_kernel.interpreted(), "TRITON_INTERPRET=1 must be set before the kernels are imported"
    report = {}
    for name, case in CASES.items():
        try:
            case()
            report[name] = "ok"
        except Exception:  # noqa: BLE001  (each case reports back by name)
            report[name] = traceback.format_exc()[-3000:]
    Path(report_path).write_text(json.dumps(report))


if __name__ == "__main__":
    _run_cases(sys.argv[1])
    sys.exit(0)

# -- the tests --------------------------------------------------------------------------------------------

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton)")

from pipeline.models import layers
from pipeline.models.triton_kernel import checks


def _environment(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def interpreter_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("triton") / "report.json"
    result = subprocess.run([sys.executable, __file__, str(path)], cwd=ROOT, capture_output=True, text=True,
                            env=_environment(TRITON_INTERPRET="1"), timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_under_the_interpreter(case, interpreter_report):
    assert interpreter_report[case] == "ok", interpreter_report[case]


# -- compile-only ------------------------------------------------------------------------------------------

# rows, timesteps, hidden units, inputs: the demo's and the paper's sizes, and the most rows a program
# computing batch statistics holds (the fallback limit)
COMPILE_SIZES = {"demo": (32, 50, 32, 24), "paper": (128, 200, 128, 64), "largest": (256, 20, 128, 64)}


@functools.cache
def _recorded(size: str, kinds=("ddlstm", "lstm"), tf32=False) -> list[dict]:
    """Every kernel specialisation one layer's training step and evaluation launch (nothing runs)."""
    shape = COMPILE_SIZES[size]
    return [spec for kind in kinds for spec in checks.layer_specialisations(kind, *shape, tf32=tf32)]


def _compile_all(specs, arch):
    results = [checks.compile_specialisation(spec, arch) for spec in specs]
    for r in results:
        assert r.shared_bytes <= checks.SHARED_LIMIT[arch], r
        assert r.spill_stores == 0 and r.spill_loads == 0, r
        assert 0 < r.registers <= 255, r
    return results


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("size", ["demo", "paper"])
def test_every_kernel_compiles_without_spills(size, arch):
    results = _compile_all(_recorded(size), arch)
    assert {r.name for r in results} == {"contribution_forward", "input_norm_forward", "step_forward",
                                         "step_backward", "input_norm_backward"}
    assert len(results) == 9  # DDLSTM: 5 kernels + evaluation; LSTM: forward, backward, evaluation


def _training_steps(specs):
    """The step kernels' training variants: the most registers."""
    return [s for s in specs
            if s["kernel"].fn.__name__.startswith("step") and s["constexprs"].get("TRAIN", True)]


def test_the_largest_batch_with_statistics_compiles_without_spills():
    """256 rows, the most a step program with statistics holds (sm_80: the tighter of the two)."""
    specs = _training_steps(_recorded("largest", kinds=("ddlstm",)))
    assert {s["constexprs"]["BLOCK_N"] for s in specs} == {256}
    _compile_all(specs, 80)


def test_tf32_products_compile():
    specs = _training_steps(_recorded("paper", kinds=("ddlstm",), tf32=True))
    assert len(specs) == 2 and {s["constexprs"]["PRECISION"] for s in specs} == {"tf32"}
    _compile_all(specs, 80)


# -- launches ----------------------------------------------------------------------------------------------


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_recurrent", ROOT / "benchmarks" / "recurrent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_paper_size_ddlstm_step_makes_at_most_2000_launches():
    count = _benchmark().triton_launches("paper", "ddlstm")
    # one launch per timestep and layer each way, the batched input side and the weights once per layer
    assert count["by_kernel"] == {"contribution_forward": 3, "input_norm_forward": 3, "step_forward": 600,
                                  "step_backward": 600, "input_norm_backward": 3}
    assert count["aten"] > 100  # the head, the loss, the update and the large products are counted too
    assert count["total"] <= 2000, count


# -- selecting the implementation -------------------------------------------------------------------------


def _missing_triton():
    raise ImportError("No module named 'triton'")


def test_triton_where_it_cannot_run_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="implementation='triton' cannot run on cpu.*TRITON_INTERPRET=1"):
        layers.resolve_implementation("triton", torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # too late: the kernels in this process are compiled ones
    with pytest.raises(RuntimeError, match="set after the Triton kernels were first imported"):
        layers.resolve_implementation("triton", torch.device("cpu"))
    monkeypatch.setattr(layers, "_triton", _missing_triton)
    with pytest.raises(RuntimeError, match="Triton cannot be imported"):
        layers.resolve_implementation("triton", torch.device("cuda"))


def test_auto_stays_native_on_the_cpu_even_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    expected = "native" if layers.native.available() else "fused"
    assert layers.resolve_implementation("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize("failure", ["mismatch", "compile error", "missing"])
def test_auto_on_cuda_falls_back_to_fused_with_a_warning(monkeypatch, failure):
    monkeypatch.setattr(layers, "_auto_verdicts", {})
    if failure == "mismatch":
        monkeypatch.setattr(checks, "self_check", lambda device: "ddbn: the output differs by up to 0.3")
        expected = "differs by up to 0.3"
    elif failure == "compile error":
        def broken(device):
            raise triton.CompilationError("kernels.py", None, "register allocation failed")
        monkeypatch.setattr(checks, "self_check", broken)
        expected = "CompilationError"
    else:
        monkeypatch.setattr(layers, "_triton", _missing_triton)
        expected = "Triton cannot be imported"
    with pytest.warns(UserWarning, match=f"not using the Triton kernels.*{expected}.*using the fused kernel"):
        assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the verdict is cached: one warning per device
        assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "fused"


def test_auto_on_cuda_takes_triton_once_its_self_check_passes(monkeypatch):
    monkeypatch.setattr(layers, "_auto_verdicts", {})
    calls = []
    monkeypatch.setattr(checks, "self_check", lambda device: calls.append(device))
    assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "triton"
    assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "triton"
    assert calls == [torch.device("cuda", 0)]


# -- benchmarks/gpu.py ---------------------------------------------------------------------------------------


def test_gpu_benchmark_runs_in_smoke_mode():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"], cwd=ROOT,
                            capture_output=True, text=True, env=_environment(TRITON_INTERPRET="1"),
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| section | what | value | note |"
    body = rows[1:]
    assert not [row for row in body if "| error |" in row], "\n".join(body)
    assert "| self-check | implementation='auto' picks | triton | self-check passed" in result.stdout
    for section in ("agreement", "train step", "evaluation", "BN-Inception", "GPU-hours"):
        assert any(row.startswith(f"| {section} |") for row in body), section
    assert sum(row.startswith("| train step |") for row in body) == 8
    assert any("config/paper.yaml" in row and "130 recurrent runs" in row for row in body)
