"""The stacked LSTM / BNLSTM / DDLSTM models: fast kernel against the reference cell, the paper's
reductions, alpha learning, streaming, padding, and the registry."""

import copy
import os
import subprocess
import sys

import pytest
import torch

from pipeline.models import (
    BNLSTM,
    DDLSTM,
    LSTM,
    StreamState,
    create_model,
    list_models,
    native,
    project_alphas_after_step,
)

MODELS = (LSTM, BNLSTM, DDLSTM)
# The two fast implementations of the same function; the native one where it can be compiled.
KERNELS = ("fused", pytest.param("native", marks=pytest.mark.skipif(
    not native.available(), reason=f"the native kernel cannot be built here: {native.unavailable_reason()}")))


def _pair(cls, kernel="fused", **kwargs):
    """The same randomly initialised model twice: reference cell and a fast kernel (float64)."""
    torch.manual_seed(0)
    ref = cls(5, 6, kwargs.pop("layers", 2), implementation="reference", **kwargs).double()
    fast = copy.deepcopy(ref)
    fast.implementation = kernel
    return ref, fast


def _mask(batch, steps):
    mask = torch.ones(batch, steps, dtype=torch.bool)
    mask[0, :3] = False  # left padding, as online evaluation windows have
    mask[5, :2] = False
    mask[-1, :1] = False
    return mask


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("learnable_affine", [False, True])
@pytest.mark.parametrize("sizes", [[6, 2], [4, 4]])  # equal blocks take a broadcast path
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_equal_reference_cell(cls, masked, learnable_affine, sizes, kernel):
    ref, fast = _pair(cls, kernel, layers=3, max_timesteps=4, learnable_affine=learnable_affine)
    if learnable_affine:
        with torch.no_grad():
            for name, p in ref.named_parameters():
                if "gamma" in name or "beta" in name:
                    p.uniform_(0.05, 0.3)
        fast.load_state_dict(ref.state_dict())
    x = torch.randn(8, 7, 5, dtype=torch.float64)  # 7 steps > max_timesteps: the last slot is reused
    mask = _mask(8, 7) if masked else None
    y_ref = ref(x, domain_sizes=sizes, mask=mask)
    y_fast = fast(x, domain_sizes=sizes, mask=mask)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(y_ref)
    (y_ref * grad).sum().backward()
    (y_fast * grad).sum().backward()
    for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
        assert p_fast.grad is not None, name
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-11, msg=name)
    for (name, b_ref), b_fast in zip(ref.named_buffers(), fast.buffers()):
        torch.testing.assert_close(b_fast, b_ref, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_input_gradient_and_float32(kernel):
    ref, fast = _pair(DDLSTM, kernel)
    x = torch.randn(6, 5, 5, dtype=torch.float64, requires_grad=True)
    x_fast = x.detach().clone().requires_grad_()
    ref(x, domain_sizes=[3, 3]).sum().backward()
    fast(x_fast, domain_sizes=[3, 3]).sum().backward()
    torch.testing.assert_close(x_fast.grad, x.grad, rtol=1e-9, atol=1e-11)
    # float32, the training precision: same function within float32 rounding
    y32 = fast.float()(x.detach().float(), domain_sizes=[3, 3])
    y64 = ref(x.detach(), domain_sizes=[3, 3])
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_kernel_is_accurate_for_inputs_far_from_zero(offset, kernel):
    """Statistics as E[a^2] - E[a]^2 lose everything to cancellation in float32 unless the
    kernel centres its input (CNN logits can sit far from zero)."""
    ref, fast = _pair(DDLSTM, kernel)
    fast.float()
    x = torch.randn(16, 6, 5, dtype=torch.float64) + offset
    y_ref = ref(x, domain_sizes=[8, 8])
    y_fast = fast(x.float(), domain_sizes=[8, 8])
    torch.testing.assert_close(y_fast.double(), y_ref, rtol=0, atol=2e-5)
    bn_ref, bn_fast = ref.layers[0].norm_x, fast.layers[0].norm_x
    torch.testing.assert_close(bn_fast.running_mean.double(), bn_ref.running_mean, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(bn_fast.running_var.double(), bn_ref.running_var, rtol=1e-4, atol=1e-5)


def test_ddlstm_with_one_domain_empty_is_bnlstm():
    torch.manual_seed(1)
    dd = DDLSTM(5, 6, 2, alpha_init=0.8).double()
    bn = BNLSTM(5, 6, 2).double()
    shared = {k: v for k, v in dd.state_dict().items() if "alpha" not in k and "running" not in k}
    bn.load_state_dict(shared, strict=False)
    for layer_dd, layer_bn in zip(dd.layers, bn.layers):  # copy the single-domain statistics
        for name in ("norm_x", "norm_h"):
            src, dst = getattr(layer_dd, name), getattr(layer_bn, name)
            dst.running_mean.copy_(src.running_mean[:1])
            dst.running_var.copy_(src.running_var[:1])
    x = torch.randn(8, 6, 5, dtype=torch.float64)
    y_dd = dd(x, domain_sizes=[8, 0])
    y_bn = bn(x)
    torch.testing.assert_close(y_dd, y_bn, rtol=1e-12, atol=1e-12)
    y_dd.sum().backward()
    y_bn.sum().backward()
    alpha_grad = dd.layers[0].alpha.grad  # no pair of domains, so alpha takes no part
    assert alpha_grad is None or float(alpha_grad.abs().sum()) == 0.0
    torch.testing.assert_close(dd.layers[1].weight_hh.grad, bn.layers[1].weight_hh.grad)
    torch.testing.assert_close(dd.layers[0].norm_x.running_mean[0], bn.layers[0].norm_x.running_mean[0])


def test_alpha_learns_and_stays_in_range():
    torch.manual_seed(2)
    model = DDLSTM(4, 8, 3, alpha_init=0.75)
    head = torch.nn.Linear(8, 3)
    optimiser = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=50.0)
    project_alphas_after_step(optimiser, model)
    x = torch.cat([torch.randn(6, 10, 4), torch.randn(10, 10, 4) * 3 + 1])
    y = torch.randint(0, 3, (16, 10))
    start = model.alphas().clone()
    assert start.shape == (3, 2)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(head(model(x, domain_sizes=[6, 10])).reshape(-1, 3),
                                                 y.reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        assert all(float(layer.alpha.grad.abs().sum()) > 0 for layer in model.layers)
        optimiser.step()
        alphas = model.alphas()
        # bounds n_i / (n_i + n_k) for a batch of 6 + 10 rows
        assert (alphas[:, 0] >= 6 / 16 - 1e-7).all() and (alphas[:, 1] >= 10 / 16 - 1e-7).all()
        assert (alphas <= 1 + 1e-7).all()
    assert not torch.equal(model.alphas(), start)


def test_eval_uses_each_domains_statistics():
    torch.manual_seed(3)
    model = DDLSTM(4, 6, 2, alpha_init=0.5, momentum=0.5)
    x = torch.cat([torch.randn(8, 5, 4), torch.randn(8, 5, 4) * 4 + 3])
    for _ in range(5):
        model(x, domain_sizes=[8, 8])
    model.eval()
    with torch.no_grad():
        y0, y1 = model(x, domain=0), model(x, domain=1)
        by_rows = model(x, domain_sizes=[8, 8])  # each row with its own domain's statistics
    assert (y0 - y1).abs().max() > 0.2 * y0.abs().max()
    torch.testing.assert_close(by_rows[:8], y0[:8])
    torch.testing.assert_close(by_rows[8:], y1[8:])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("masked", [False, True])
def test_fast_evaluation_equals_reference_cell(cls, masked, kernel):
    ref, fast = _pair(cls, kernel, max_timesteps=4)
    for _ in range(3):  # population statistics worth using
        ref(torch.randn(8, 7, 5, dtype=torch.float64), domain_sizes=[5, 3])
    fast.load_state_dict(ref.state_dict())
    ref.eval()
    fast.eval()
    x = torch.randn(8, 7, 5, dtype=torch.float64)  # 7 steps > max_timesteps
    mask = _mask(8, 7) if masked else None
    ids = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    for domain in (0, 1, ids):
        with torch.no_grad():
            y_fast = fast(x, domain=domain, mask=mask)
        y_ref = ref(x, domain=domain, mask=mask)  # with gradients: the autograd cell
        torch.testing.assert_close(y_fast, y_ref.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", MODELS)
def test_streaming_equals_whole_window(cls):
    torch.manual_seed(4)
    model = cls(5, 6, 2, max_timesteps=4).double()
    x = torch.randn(6, 9, 5, dtype=torch.float64)
    for _ in range(3):  # population statistics worth using
        model(torch.randn(6, 9, 5, dtype=torch.float64), domain_sizes=[3, 3])
    model.eval()
    with torch.no_grad():
        whole = model(x, domain=1)
        state, steps = None, []
        for t in range(x.shape[1]):
            y_t, state = model.step(x[:, t], state, domain=1)
            steps.append(y_t)
    assert isinstance(state, StreamState) and state.t == 9
    torch.testing.assert_close(torch.stack(steps, 1), whole, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_streaming_in_training_matches_the_kernels(kernel):
    ref, fast = _pair(DDLSTM, kernel)
    x = torch.randn(6, 5, 5, dtype=torch.float64)
    state, steps = None, []
    for t in range(5):
        y_t, state = ref.step(x[:, t], state, domain_sizes=[4, 2])
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), fast(x, domain_sizes=[4, 2]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", MODELS)
def test_padded_frames_change_nothing(cls):
    torch.manual_seed(5)
    a = cls(5, 6, 2).double()
    b = copy.deepcopy(a)
    x = torch.randn(8, 7, 5, dtype=torch.float64)
    mask = _mask(8, 7)
    x_other = x.clone()
    x_other[~mask] = 1e3  # whatever the padding holds
    y_a = a(x, domain_sizes=[6, 2], mask=mask)
    y_b = b(x_other, domain_sizes=[6, 2], mask=mask)
    torch.testing.assert_close(y_a[mask], y_b[mask])
    (y_a[mask].sum()).backward()
    (y_b[mask].sum()).backward()
    for p_a, p_b in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p_a.grad, p_b.grad)
    for b_a, b_b in zip(a.buffers(), b.buffers()):
        torch.testing.assert_close(b_a, b_b)
    # a padded step carries the state: row 0 starts its sequence at t = 3 from a zero state
    assert torch.equal(y_a[0, :3], torch.zeros_like(y_a[0, :3]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_three_domain_ddlstm_trains(kernel):
    ref, fast = _pair(DDLSTM, kernel, num_domains=3)
    assert fast.alphas().shape == (2, 6)
    x = torch.randn(9, 4, 5, dtype=torch.float64)
    y_ref, y_fast = ref(x, domain_sizes=[3, 4, 2]), fast(x, domain_sizes=[3, 4, 2])
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-10, atol=1e-12)
    y_ref.sum().backward()
    y_fast.sum().backward()
    torch.testing.assert_close(fast.layers[0].alpha.grad, ref.layers[0].alpha.grad)


def test_registry_and_errors():
    assert list_models() == ["bnlstm", "ddlstm", "lstm"]
    model = create_model("DDLSTM", 4, 8, 3, num_domains=2, alpha_init=0.75, max_timesteps=200)
    assert isinstance(model, DDLSTM) and len(model.layers) == 3
    assert isinstance(create_model("lstm", 4, 8), LSTM)
    with pytest.raises(ValueError, match="unknown model 'gru'"):
        create_model("gru", 4, 8)
    with pytest.raises(ValueError, match="domain_sizes"):
        model(torch.randn(4, 3, 4))
    with pytest.raises(ValueError, match="sum to 5"):
        model(torch.randn(4, 3, 4), domain_sizes=[2, 3])
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        model(torch.randn(4, 3, 5), domain_sizes=[2, 2])
    with pytest.raises(ValueError, match="num_layers"):
        DDLSTM(4, 8, 11)
    model.eval()
    with pytest.raises(ValueError, match="domain="):
        model(torch.randn(4, 3, 4))
    # LSTM and BNLSTM accept and ignore the domain arguments, so training code is model-agnostic
    bn = BNLSTM(4, 8)
    assert bn(torch.randn(4, 3, 4), domain_sizes=[1, 3]).shape == (4, 3, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    ref, fast = _pair(DDLSTM)
    x = torch.randn(6, 5, 5, dtype=torch.float64)
    y_cpu = fast(x, domain_sizes=[3, 3])
    y_gpu = copy.deepcopy(ref).to("cuda")
    y_gpu.implementation = "fused"
    torch.testing.assert_close(y_gpu(x.cuda(), domain_sizes=[3, 3]).cpu(), y_cpu)


@pytest.mark.parametrize("kernel", KERNELS)
def test_recycled_workspaces_survive_interleaved_passes(kernel):
    """Two forwards before their backwards (gradient accumulation) must not share buffers."""
    ref, fast = _pair(DDLSTM, kernel)
    x1 = torch.randn(6, 5, 5, dtype=torch.float64)
    x2 = torch.randn(6, 5, 5, dtype=torch.float64)
    for model in (ref, fast):
        y1 = model(x1, domain_sizes=[3, 3])
        y2 = model(x2, domain_sizes=[3, 3])
        (y2 * 2).sum().backward()
        model(x2, domain_sizes=[3, 3]).sum().backward()  # reuses y2's returned buffers
        y1.sum().backward()
    for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_second_backward_through_the_kernel_is_refused(kernel):
    _, fast = _pair(LSTM, kernel)
    y = fast(torch.randn(4, 3, 5, dtype=torch.float64)).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        y.backward()


def test_without_a_compiler_the_tensor_kernel_runs(tmp_path):
    code = ("import torch; from pipeline.models import DDLSTM, native; "
            "y = DDLSTM(4, 8, 2)(torch.randn(6, 5, 4), domain_sizes=[3, 3]); "
            "print(native.available(), tuple(y.shape))")
    env = {**os.environ, "CXX": "/bin/false", "TORCH_EXTENSIONS_DIR": str(tmp_path)}  # a build that cannot run
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[-2] == "False (6, 5, 8)"
    assert "the native recurrent kernel is not available" in result.stderr and "using the tensor kernel" in result.stderr


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_equal_reference_cell_when_a_step_is_split_between_threads(kernel):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # 96 rows of 160 gates: the native kernel splits each step's rows
    try:
        torch.manual_seed(0)
        ref = DDLSTM(12, 40, 2, implementation="reference", max_timesteps=6).double()
        fast = copy.deepcopy(ref)
        fast.implementation = kernel
        x = torch.randn(96, 6, 12, dtype=torch.float64)
        mask = torch.ones(96, 6, dtype=torch.bool)
        mask[::7, :2] = False
        y_ref, y_fast = ref(x, domain_sizes=[60, 36], mask=mask), fast(x, domain_sizes=[60, 36], mask=mask)
        torch.testing.assert_close(y_fast, y_ref, rtol=1e-10, atol=1e-12)
        grad = torch.randn_like(y_ref)
        (y_ref * grad).sum().backward()
        (y_fast * grad).sum().backward()
        for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
            torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-9, atol=1e-11, msg=name)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("kernel", KERNELS)
def test_running_statistics_past_the_table_skip_timesteps_without_rows(kernel):
    """Timesteps past max_timesteps share its last slot, updated in order; where every row of a domain is
    padding that timestep leaves the slot alone (the update is arithmetic, never a host-side test)."""
    ref, fast = _pair(DDLSTM, kernel, layers=1, max_timesteps=3)
    x = torch.randn(8, 7, 5, dtype=torch.float64)
    mask = torch.ones(8, 7, dtype=torch.bool)
    mask[:3, 5] = False  # domain 0 (rows 0-2) has no real row at t = 5, past the table
    mask[3:, 4] = False  # nor has domain 1 at t = 4
    for model in (ref, fast):
        model(x, domain_sizes=[3, 5], mask=mask)
    for (name, b_ref), b_fast in zip(ref.named_buffers(), fast.buffers()):
        torch.testing.assert_close(b_fast, b_ref, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("cls", MODELS)
def test_a_look_ahead_training_step_reads_nothing_back_on_the_host(cls):
    """A training step must not synchronise with the device, or CUDA-graph capture breaks: on the meta device
    every read of a tensor's value on the host raises. Look-ahead windows (1.5 histories) are longer than the
    models' max_timesteps (the history), with padded frames."""
    from pipeline.optim import make_optimizer
    from pipeline.training.classifier import frame_loss

    history = 8
    model = cls(6, 16, 2, max_timesteps=history, implementation="fused").to("meta")
    head = torch.nn.Linear(16, 5).to("meta")
    parameters = list(model.parameters()) + list(head.parameters())
    optimizer = make_optimizer("sgd", parameters, lr=0.1, momentum=0.9)
    x = torch.empty(10, history * 3 // 2, 6, device="meta")
    mask = torch.ones(10, history * 3 // 2, dtype=torch.bool, device="meta")
    targets = torch.zeros(10, history * 3 // 2, dtype=torch.long, device="meta")
    for _ in range(2):  # the second step has the optimiser's state
        loss = frame_loss(head(model(x, domain_sizes=[4, 6], mask=mask)), targets, "windows")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.constrain_alphas_()
