"""DDBN2d (dual-domain BN of convolutional maps) against the package's DDBN on the same batch, forward and
gradients, and BN-Inception with dual-domain layers against BN-Inception with plain BN."""

import copy

import pytest
import torch
from torch import nn

from pipeline.features.bninception import BNInception
from pipeline.models import DDBN, contribution_weights
from pipeline.models.ddbn2d import DDBN2d, constrain_alphas_, ddbn_layers, domains, dual_domain


def _pair(channels, alphas, alpha_init=0.75):
    """A DDBN2d and the package's DDBN with the same alphas, gamma and beta (float64)."""
    layer = DDBN2d(channels, alpha_init=alpha_init).double()
    reference = DDBN(channels, num_domains=2, alpha_init=alpha_init, max_timesteps=1, gamma_init=1.0,
                     learnable_affine=True).double()
    with torch.no_grad():
        for module in (layer, reference):
            module.alpha.copy_(torch.tensor(alphas, dtype=torch.float64))
            module.gamma.copy_(torch.linspace(0.5, 1.5, channels, dtype=torch.float64))
            module.beta.copy_(torch.linspace(-0.2, 0.3, channels, dtype=torch.float64))
    return layer, reference


def _maps(n1, n2, channels, height, width, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n1 + n2, channels, height, width, dtype=torch.float64)
    x[n1:] = x[n1:] * 2.5 + 1.5  # the second domain has other statistics
    return x


def _grads(output, *tensors):
    weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view_as(output)  # not a symmetric loss
    return torch.autograd.grad((output * weights).sum(), tensors)


@pytest.mark.parametrize("n1,n2,alphas", [(6, 6, (0.75, 0.75)), (5, 9, (0.6, 0.9)), (8, 4, (1.0, 0.45))])
def test_one_by_one_maps_are_the_packages_ddbn_on_rows(n1, n2, alphas):
    layer, reference = _pair(5, alphas)
    x = _maps(n1, n2, 5, 1, 1).requires_grad_()
    y = layer(x, domain_sizes=[n1, n2])
    expected = reference(x[:, :, 0, 0], 0, domain_sizes=[n1, n2])
    torch.testing.assert_close(y[:, :, 0, 0], expected, rtol=1e-12, atol=1e-12)
    got = _grads(y[:, :, 0, 0], x, layer.alpha, layer.gamma, layer.beta)
    want = _grads(expected, x, reference.alpha, reference.gamma, reference.beta)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, reference.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var, reference.running_var, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n1,n2,alphas", [(4, 4, (0.75, 0.75)), (3, 6, (0.5, 0.8))])
def test_maps_are_the_packages_ddbn_over_rows_and_positions(n1, n2, alphas):
    # (N, C, H, W) against DDBN on the N H W flattened positions, each row's weight repeated over its positions
    layer, reference = _pair(3, alphas)
    x = _maps(n1, n2, 3, 4, 5).requires_grad_()
    positions = 4 * 5
    y = layer(x, domain_sizes=[n1, n2])
    rows = x.permute(0, 2, 3, 1).reshape(-1, 3)  # (N H W, C), row j's positions together
    weights, present = contribution_weights(reference.effective_alpha(), [n1, n2])
    expected = reference(rows, 0, domain_sizes=[n1 * positions, n2 * positions],
                         weights=(weights.repeat_interleave(positions, 1), present))
    expected = expected.reshape(n1 + n2, 4, 5, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    got = _grads(y, x, layer.alpha, layer.gamma, layer.beta)
    want = _grads(expected, x, reference.alpha, reference.gamma, reference.beta)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert layer.alpha.grad is None and got[1].abs().sum() > 0  # the alphas do get a gradient
    torch.testing.assert_close(layer.running_mean, reference.running_mean, rtol=1e-12, atol=1e-12)


def test_evaluation_normalises_with_the_flagged_domains_population_statistics():
    layer, _ = _pair(3, (0.5, 0.5))
    layer.momentum = 1.0  # the population statistics become the last batch's
    x = _maps(6, 6, 3, 2, 2)
    train_out = layer(x, domain_sizes=[6, 6])
    layer.eval()
    # the population statistics are the batch's own, so evaluating domain 2's rows as domain 2 repeats training
    torch.testing.assert_close(layer(x[6:], domain=1), train_out[6:], rtol=1e-10, atol=1e-10)
    assert (layer(x[6:], domain=0) - train_out[6:]).abs().max() > 0.1  # domain 1's statistics are others
    ids = torch.tensor([0] * 6 + [1] * 6)
    torch.testing.assert_close(layer(x, domain=ids), train_out, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="needs domain="):
        layer(x)


def _networks(alpha):
    torch.manual_seed(0)
    plain = BNInception(num_classes=4, width_multiplier=0.125, drop_rate=0.0).double()
    joint = dual_domain(copy.deepcopy(plain), alpha_init=alpha)
    return plain.train(), joint.train()


def test_bninception_gets_one_alpha_pair_per_bn_layer():
    plain, joint = _networks(0.75)
    bn_count = sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert bn_count == 69 and len(ddbn_layers(joint)) == bn_count
    assert not any(isinstance(m, nn.BatchNorm2d) for m in joint.modules())
    assert all(layer.alpha.shape == (2,) for layer in ddbn_layers(joint))


def test_a_one_domain_batch_is_plain_batchnorm_exactly():
    plain, joint = _networks(0.75)
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    with domains(joint, sizes=[6, 0]):
        torch.testing.assert_close(joint(x), plain(x), rtol=1e-9, atol=1e-9)


def test_every_alpha_at_its_upper_bound_is_whole_batch_bn_up_to_the_tanh_edge():
    # alpha = 1 reaches the whole batch, but the soft edge of eq. 5-6 weighs the ~3 rows beside each threshold
    # by 0.5-0.98 instead of 1: over 69 layers that leaves a gap to plain BN which falls as the batch grows
    # (measured: mean |difference| / mean |logit| 0.29 at 16 rows per domain, 0.045 at 128), while
    # per-domain statistics (alpha at n_i / N) stay a whole logit's size away (1.06 at 128)
    gaps = {}
    for n in (16, 128):
        x = _maps(n, n, 3, 32, 32, seed=3)
        for alpha in (1.0, 0.5):
            plain, joint = _networks(alpha)
            with torch.no_grad(), domains(joint, sizes=[n, n]):
                output, reference = joint(x), plain(x)
            gaps[n, alpha] = float((output - reference).abs().mean() / reference.abs().mean())
    assert gaps[128, 1.0] < 0.08 and gaps[128, 1.0] < gaps[16, 1.0] / 3
    assert gaps[128, 0.5] > 0.5 and gaps[16, 0.5] > 0.5


def test_training_keeps_alphas_within_their_bounds_and_learns_them():
    _, joint = _networks(0.75)
    joint.float()
    x = torch.randn(8, 3, 32, 32)
    x[4:] += 2
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    before = [layer.alpha.detach().clone() for layer in ddbn_layers(joint)]
    for _ in range(3):
        with domains(joint, sizes=[4, 4]):
            loss = nn.functional.cross_entropy(joint(x), labels)
        loss.backward()
        with torch.no_grad():
            for layer in ddbn_layers(joint):
                layer.alpha -= 5.0 * layer.alpha.grad
                layer.alpha.grad = None
        constrain_alphas_(joint)
    after = [layer.alpha.detach() for layer in ddbn_layers(joint)]
    assert all(((a >= 0.5) & (a <= 1.0)).all() for a in after)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(after, before))


def test_converting_a_trained_bn_keeps_its_affine_part_and_population_statistics():
    bn = nn.BatchNorm2d(4)
    bn(torch.randn(16, 4, 3, 3) * 3 + 1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    layer = DDBN2d.from_batchnorm(bn, alpha_init=0.6)
    bn.eval()
    layer.eval()
    x = torch.randn(5, 4, 3, 3)
    for domain in (0, 1):
        torch.testing.assert_close(layer(x, domain=domain), bn(x))
    assert layer.alpha.tolist() == pytest.approx([0.6, 0.6])
