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


def _case_persistent_row_blocks_and_wider_programs():
    """Where the grid would exceed the SMs, 8 or 16 units per program; without statistics, rows in blocks of
    128 with a barrier each (130 rows: two blocks, the second nearly empty)."""
    from pipeline.models import DDLSTM, LSTM
    from pipeline.models.triton_kernel import launcher

    assumed = launcher.ASSUMED_SMS
    try:
        for sms, hidden, block_h in ((2, 16, 8), (1, 16, 16)):
            launcher.ASSUMED_SMS = sms
            tiles = launcher.plan(12, hidden, True, torch.device("cpu"), True).tiles
            assert (tiles.block_h, tiles.programs) == (block_h, 16 // block_h), tiles
            ref, ours = _pair(DDLSTM, layers=1, hidden=hidden)
            _train_and_compare(ref, ours, [5, 7], _mask(12, 7))
            _evaluate_and_compare(ref, ours, _mask(12, 7), (PER_ROW,))
        launcher.ASSUMED_SMS = 4
        tiles = launcher.plan(130, 16, False, torch.device("cpu"), True).tiles
        assert (tiles.block_n, tiles.row_blocks, tiles.block_h) == (128, 2, 8), tiles
        ref, ours = _pair(LSTM, layers=1)
        _train_and_compare(ref, ours, None, _mask(130, 3), batch=130, steps=3)
    finally:
        launcher.ASSUMED_SMS = assumed


def _case_precisions_reproduce_tf32_rounding():
    """ieee and tf32x3 within float32's error of float64, tf32 ~1e-3 off (the interpreter reproduces TF32's
    rounding, so that accuracy is measured here): each within `selfcheck.TOLERANCE`; and the self-check."""
    from pipeline.models.triton_kernel import launcher, selfcheck

    worst = {}
    with _environment_variable(launcher.PRECISION_VARIABLE, None):
        for precision in launcher.PRECISIONS:
            os.environ[launcher.PRECISION_VARIABLE] = precision
            errors = selfcheck.compare("ddlstm", 12, 6, 16, 5, 1, torch.device("cpu"), masked=True,
                                       max_timesteps=4)
            worst[precision] = selfcheck.worst(errors)[1]
            assert worst[precision] <= selfcheck.TOLERANCE[precision], (precision, errors)
            assert errors["output"] <= (3e-3 if precision == "tf32" else 1e-5), (precision, errors)
        assert worst["tf32"] > 20 * max(worst["ieee"], worst["tf32x3"]), worst
        del os.environ[launcher.PRECISION_VARIABLE]  # the default: tf32x3
        assert selfcheck.self_check(torch.device("cpu"), "ddbn", rows=12, hidden=16) is None


def _case_a_failure_after_the_self_check_runs_through_the_fused_kernel():
    """Under implementation="auto" a failing Triton forward or backward runs through the fused kernel,
    with one warning: the same outputs and gradients as the reference cell."""
    from pipeline.models import DDLSTM, layers
    from pipeline.models.triton_kernel import function

    original, resolve, checked = function.launch, layers.resolve_implementation, layers._auto_checked

    def auto_takes_triton(name, device):  # as on a GPU; the reference cell as asked
        return "triton" if name == "auto" else resolve(name, device)

    for failing in ("sequence_forward", "sequence_backward"):
        def launch(kernel, *args, failing=failing, **kwargs):
            if getattr(kernel, "__name__", "") == failing:
                raise RuntimeError(f"{failing} failed to compile")
            return original(kernel, *args, **kwargs)

        ref, ours = _pair(DDLSTM, layers=2)
        ours.implementation = "auto"
        function.launch = launch
        verdicts = dict(layers._auto_verdicts)
        layers.resolve_implementation = auto_takes_triton
        layers._auto_checked = lambda layer, x: "triton"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _train_and_compare(ref, ours, [5, 7], _mask(12, 7))
        finally:
            function.launch = original
            layers.resolve_implementation, layers._auto_checked = resolve, checked
            layers._auto_verdicts.clear()
            layers._auto_verdicts.update(verdicts)
        messages = [str(w.message) for w in caught if "a Triton kernel failed" in str(w.message)]
        assert len(messages) == 1 and f"{failing} failed to compile" in messages[0], messages


CASES = {name.removeprefix("_case_"): case for name, case in sorted(globals().items())
         if name.startswith("_case_")}
# the step kernels (DDLSTM_TRITON_KERNEL=step), the fallback and the reference of the persistent ones
STEP_CASES = ("ddlstm_hidden_size_not_a_multiple_of_16", "ddlstm_unequal_domains_masked_learnable_affine",
              "lstm_masked_and_unmasked", "training_step_equals_fused")


class _environment_variable:
    """`name` set to `value` (None: removed) inside, restored after."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __enter__(self):
        self.previous = os.environ.get(self.name)
        if self.value is None:
            os.environ.pop(self.name, None)
        else:
            os.environ[self.name] = self.value

    def __exit__(self, *exc):
        if self.previous is None:
            os.environ.pop(self.name, None)
        else:
            os.environ[self.name] = self.previous


def _run_cases(report_path: str, variant: str) -> None:
    torch.set_num_threads(1)
    from pipeline.models import triton_kernel
    from pipeline.models.triton_kernel import launcher

    assert triton_kernel.interpreted(), "TRITON_INTERPRET=1 must be set before the kernels are imported"
    os.environ[launcher.KERNEL_VARIABLE] = variant
    report = {}
    for name, case in CASES.items():
        if variant == "step" and name not in STEP_CASES:
            continue
        try:
            case()
            report[name] = "ok"
        except Exception:  # noqa: BLE001  (each case reports back by name)
            report[name] = traceback.format_exc()[-3000:]
    Path(report_path).write_text(json.dumps(report))


if __name__ == "__main__":
    _run_cases(sys.argv[1], sys.argv[2])
    sys.exit(0)

# -- the tests --------------------------------------------------------------------------------------------

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton)")

from pipeline.models import layers
from pipeline.models.triton_kernel import checks, launcher, selfcheck


def _environment(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def interpreter_report(tmp_path_factory):
    """{variant: {case: "ok" or the traceback}}: the persistent kernels (the default) through every case, the
    step kernels through STEP_CASES."""
    reports = {}
    for variant in ("persistent", "step"):
        path = tmp_path_factory.mktemp("triton") / f"{variant}.json"
        result = subprocess.run([sys.executable, __file__, str(path), variant], cwd=ROOT, capture_output=True,
                                text=True, env=_environment(TRITON_INTERPRET="1"), timeout=900, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        reports[variant] = json.loads(path.read_text())
    return reports


@pytest.mark.parametrize("case", sorted(CASES))
def test_persistent_kernels_under_the_interpreter(case, interpreter_report):
    assert interpreter_report["persistent"][case] == "ok", interpreter_report["persistent"][case]


@pytest.mark.parametrize("case", STEP_CASES)
def test_step_kernels_under_the_interpreter(case, interpreter_report):
    assert interpreter_report["step"][case] == "ok", interpreter_report["step"][case]


# -- compile-only ------------------------------------------------------------------------------------------

# rows, timesteps, hidden units, inputs: the demo's and the paper's sizes, and the most rows a program
# computing batch statistics holds
COMPILE_SIZES = {"demo": (32, 50, 32, 24), "paper": (128, 200, 128, 64), "largest": (256, 20, 128, 64)}
SMS = {80: 108, 90: 132}  # an A100's and an H100's SMs: the most programs resident at once, one per SM
SEQUENCE_KERNELS = {"sequence_forward", "sequence_backward"}


@functools.cache
def _recorded(size: str, kinds=("ddlstm", "lstm"), precision="tf32x3", kernel="persistent") -> list[dict]:
    """Every kernel specialisation one layer's training step and evaluation launch (nothing runs)."""
    shape = COMPILE_SIZES[size]
    return [spec for kind in kinds
            for spec in checks.layer_specialisations(kind, *shape, precision=precision, kernel=kernel)]


def _compile_all(specs, arch):
    results = [(spec, checks.compile_specialisation(spec, arch)) for spec in specs]
    for spec, r in results:
        assert r.shared_bytes <= checks.SHARED_LIMIT[arch], r
        assert r.spill_stores == 0 and r.spill_loads == 0, r
        assert 0 < r.registers <= 255, r
        if r.name in SEQUENCE_KERNELS:  # a grid barrier: every program resident, one per SM
            assert spec["programs"] <= SMS[arch], (spec["programs"], r)
            assert r.instructions["atom"] >= 1 and r.instructions["acquire"] >= 1, r
    return [r for _, r in results]


def _tensor_core_products(r) -> int:
    return r.instructions["mma"] + r.instructions["wgmma"]


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("size", ["demo", "paper"])
def test_persistent_kernels_compile_without_spills_on_a_resident_grid(size, arch):
    results = _compile_all(_recorded(size), arch)
    assert {r.name for r in results} == {"contribution_forward", "input_norm_forward", "sequence_forward",
                                         "sequence_backward", "input_norm_backward"}
    assert len(results) == 9  # DDLSTM: 5 kernels + evaluation; LSTM: forward, backward, evaluation
    for r in results:
        if r.name in SEQUENCE_KERNELS:  # the default, tf32x3: tensor cores, error-compensated
            assert _tensor_core_products(r) > 0 and r.instructions["round"] > 0, r


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("size", ["demo", "paper"])
def test_step_kernels_compile_without_spills(size, arch):
    results = _compile_all(_recorded(size, kernel="step"), arch)
    assert {r.name for r in results} == {"contribution_forward", "input_norm_forward", "step_forward",
                                         "step_backward", "input_norm_backward"}
    assert len(results) == 9


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_each_precision_compiles_to_its_products(precision):
    """ieee: float32 FMAs, no tensor core; tf32: a third of tf32x3's tensor-core products, no rounding."""
    default = {(r.name, r.arch, r.constexprs.get("TRAIN")): r for arch in (80, 90)
               for r in _compile_all(_training_sequence(_recorded("paper", kinds=("ddlstm",))), arch)}
    for arch in (80, 90):
        for r in _compile_all(_training_sequence(_recorded("paper", kinds=("ddlstm",), precision=precision)),
                              arch):
            compensated = default[(r.name, r.arch, r.constexprs.get("TRAIN"))]
            if precision == "ieee":
                assert _tensor_core_products(r) == 0 and r.instructions["fma"] > 200, r
            else:
                assert 3 * _tensor_core_products(r) == _tensor_core_products(compensated), (r, compensated)
                assert r.instructions["round"] == 0, r


def _training_sequence(specs, names=SEQUENCE_KERNELS):
    """The recurrence's training variants (the most registers)."""
    return [s for s in specs if s["kernel"].fn.__name__ in names and s["constexprs"].get("TRAIN", True)]


@pytest.mark.parametrize("arch", [80, 90])
def test_the_largest_batch_with_statistics_compiles_without_spills(arch):
    """256 rows, the most a program with statistics holds: the persistent kernels at every precision; the
    step kernels at ieee (at tf32x3 their backward spills 48 B on sm_80, 60 B on sm_90)."""
    for kernel, precisions in (("persistent", ("tf32x3", "tf32", "ieee")), ("step", ("ieee",))):
        for precision in precisions:
            recorded = _recorded("largest", kinds=("ddlstm",), precision=precision, kernel=kernel)
            specs = _training_sequence(recorded, SEQUENCE_KERNELS | {"step_forward", "step_backward"})
            assert len(specs) == 2 and {s["constexprs"]["BLOCK_N"] for s in specs} == {256}
            _compile_all(specs, arch)


def test_persistent_tiles_keep_the_grid_resident():
    choose = launcher.choose_persistent
    assert choose(128, 128, True, 132).grid == (32, 1)  # the paper's size: 4 units per program
    assert choose(128, 128, True, 20).grid == (16, 1)  # 8 units per program where 32 would not fit
    assert choose(512, 128, False, 132).grid == (32, 4)  # evaluation: 4 row blocks of 128
    assert choose(512, 128, False, 108).grid == (16, 4)
    assert "exceed the 8 that can be resident" in choose(512, 128, False, 8)
    assert "at most 256" in choose(300, 16, True, 132)


# -- launches ----------------------------------------------------------------------------------------------


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_recurrent", ROOT / "benchmarks" / "recurrent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_paper_size_ddlstm_step_makes_at_most_20_triton_launches():
    count = _benchmark().triton_launches("paper", "ddlstm")
    # per layer: the contribution weights, the input side's normaliser each way, the recurrence each way
    assert count["by_kernel"] == {"contribution_forward": 3, "input_norm_forward": 3, "sequence_forward": 3,
                                  "sequence_backward": 3, "input_norm_backward": 3}
    assert count["triton"] == 15
    assert count["aten"] > 100  # the head, the loss, the update and the large products are counted too


def test_the_step_kernels_launch_once_per_timestep(monkeypatch):
    monkeypatch.setenv(launcher.KERNEL_VARIABLE, "step")
    count = _benchmark().triton_launches("paper", "ddlstm")
    assert count["by_kernel"] == {"contribution_forward": 3, "input_norm_forward": 3, "step_forward": 600,
                                  "step_backward": 600, "input_norm_backward": 3}


def test_a_look_ahead_triton_step_reads_nothing_back_on_the_host():
    """As tests/test_models.py's fused-kernel test: on the meta device, in counting mode (kernels skipped),
    any host read of a tensor raises; a look-ahead window is longer than max_timesteps."""
    from pipeline.models import create_model

    for kind in ("ddlstm", "bnlstm", "lstm"):
        model = create_model(kind, 6, 16, 2, max_timesteps=8, implementation="triton").to("meta")
        x = torch.empty(10, 12, 6, device="meta")
        mask = torch.ones(10, 12, dtype=torch.bool, device="meta")
        with launcher.counting() as record:
            model(x, domain_sizes=[4, 6], mask=mask).sum().backward()
            model.constrain_alphas_()
        assert record.launches > 0


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


def test_triton_can_build_its_launcher_here():
    assert selfcheck.launcher_build_problem() is None
    rows = {what: problem for what, _, problem in selfcheck.preflight()}
    assert rows["Triton"] is None and rows["C compiler and Python headers (Triton's launcher)"] is None


def test_a_missing_compiler_or_headers_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert "no-such-cc" in selfcheck.launcher_build_problem()
    monkeypatch.delenv("CC")
    monkeypatch.setattr(selfcheck, "_python_include", lambda: str(tmp_path))
    assert "Python's headers are missing" in selfcheck.launcher_build_problem()


@pytest.mark.parametrize("failure", ["compiler", "missing"])
def test_auto_on_cuda_falls_back_to_fused_where_triton_cannot_build(monkeypatch, failure):
    monkeypatch.setattr(layers, "_auto_verdicts", {})
    if failure == "compiler":
        monkeypatch.setattr(selfcheck, "launcher_build_problem", lambda: "the C compiler 'gcc' is not there")
        expected = "the C compiler 'gcc' is not there"
    else:
        monkeypatch.setattr(layers, "_triton", _missing_triton)
        expected = "Triton cannot be imported"
    with pytest.warns(UserWarning, match=f"not using the Triton kernels.*{expected}.*using the fused kernel"):
        assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the verdict is cached: one warning per device
        assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "fused"


def test_auto_takes_triton_where_triton_can_build(monkeypatch):
    monkeypatch.setattr(layers, "_auto_verdicts", {})
    assert layers.resolve_implementation("auto", torch.device("cuda", 0)) == "triton"


def test_the_self_check_runs_once_per_shape_class(monkeypatch):
    """Rows that give the same tiles share one self-check, at the first call's size; a failure is one
    warning naming the class, and that class runs through the fused kernel."""
    from pipeline.models.layers import RecurrentLayer

    monkeypatch.setattr(layers, "_class_verdicts", {})
    monkeypatch.setattr(layers, "_auto_verdicts", {})
    calls = []

    def check(device, normalisation, rows, hidden, training):
        calls.append((normalisation, rows, hidden, training))
        return "the output differs from float64 by 0.3" if rows > 64 else None

    monkeypatch.setattr(selfcheck, "self_check", check)
    layer = RecurrentLayer(5, 16, "ddbn")
    assert layers._auto_checked(layer, torch.empty(40, 3, 5)) == "triton"
    assert layers._auto_checked(layer, torch.empty(64, 3, 5)) == "triton"  # 64 rows: the same tiles as 40
    layer.eval()
    assert layers._auto_checked(layer, torch.empty(64, 3, 5)) == "triton"  # evaluation: another class
    layer.train()
    with pytest.warns(UserWarning, match="training of 'ddbn' layers with 100 rows, 16 units.*0.3.*fused"):
        assert layers._auto_checked(layer, torch.empty(100, 3, 5)) == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layers._auto_checked(layer, torch.empty(128, 3, 5)) == "fused"
    assert calls == [("ddbn", 40, 16, True), ("ddbn", 64, 16, False), ("ddbn", 100, 16, True)]


def test_a_self_check_that_raises_falls_back_in_one_line(monkeypatch):
    from pipeline.models.layers import RecurrentLayer

    monkeypatch.setattr(layers, "_class_verdicts", {})

    def broken(*args, **kwargs):
        raise triton.CompilationError("kernels.py", None, "register allocation\nfailed")

    monkeypatch.setattr(selfcheck, "self_check", broken)
    with pytest.warns(UserWarning) as caught:
        assert layers._auto_checked(RecurrentLayer(5, 16, "none"), torch.empty(8, 3, 5)) == "fused"
    assert "CompilationError" in str(caught[0].message) and "\n" not in str(caught[0].message)


def test_a_failing_triton_forward_under_auto_runs_through_the_fused_kernel(monkeypatch):
    from pipeline.models.layers import RecurrentLayer

    monkeypatch.setattr(layers, "_auto_verdicts", {})

    class Broken:
        @staticmethod
        def train_layer(*args):
            raise RuntimeError("sequence_forward: out of resources")

    monkeypatch.setattr(layers, "_triton", lambda: Broken)
    torch.manual_seed(0)
    layer, x = RecurrentLayer(5, 16, "ddbn"), torch.randn(8, 3, 5)
    reference = copy.deepcopy(layer)
    with pytest.warns(UserWarning, match="a Triton kernel failed.*out of resources.*fused kernel from now"):
        out = layer._train(x, [4, 4], None, "triton", fallback=True)
    torch.testing.assert_close(out, reference(x, domain_sizes=[4, 4], implementation="fused"))
    assert layers._auto_verdicts["cpu"] == "fused"
    with pytest.raises(RuntimeError, match="out of resources"):  # asked for by name: no fallback
        layer._train(x, [4, 4], None, "triton")


# -- benchmarks/gpu.py ---------------------------------------------------------------------------------------


def test_gpu_benchmark_runs_in_smoke_mode():
    """Every section end to end on the CPU under the interpreter, a verdict in every row that checks."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"], cwd=ROOT,
                            capture_output=True, text=True, env=_environment(TRITON_INTERPRET="1"),
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    sections = {}
    for block in result.stdout.split("\n## ")[1:]:
        title = block.split(" (wall-clock guard")[0]
        lines = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
        sections[title] = lines[1:]  # without the header
    assert list(sections) == ["preflight", "correctness", "training step", "evaluation", "BN-Inception",
                              "GPU-hours"]
    every = [line for rows in sections.values() for line in rows]
    assert not [line for line in every if "FAIL" in line or "error" in line or "time guard" in line], \
        "\n".join(every)
    assert all(line.endswith("| PASS |") for line in sections["preflight"]), sections["preflight"]
    checked = [line for line in sections["correctness"] if line.endswith("| PASS |")]
    assert len(checked) == 2 * (6 + 2) + 1  # padded and not: DDLSTM's 6 variants, BNLSTM, LSTM; barriers
    assert sum(line.endswith("| n/a |") for line in sections["correctness"]) == 6  # graphs: CUDA only
    timing = sections["training step"]
    assert len(timing) == 2 + 12 + 2 + 1 and all("| PASS |" in line for line in timing if "triton" in line)
    assert any(line.startswith("| config/paper.yaml | 130 |") for line in sections["GPU-hours"])
