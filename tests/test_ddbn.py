"""DDBN and its contribution functions against an independent float64 reading of docs/method.md §4."""

import math

import pytest
import torch

from pipeline.models import BN, DDBN, alpha_index, contribution_weights
from pipeline.models.contribution import contribution_directions


def spec_ddbn(x, n1, alpha1, alpha2, eps, gamma=0.1, beta=0.0):
    """docs/method.md §4 written out sample by sample in float64 (eq. 5-9), domain 1 first."""
    n, f = len(x), len(x[0])
    tau = [
        [(1 - math.tanh(j - alpha1 * n)) / 2 for j in range(n)],
        [(1 + math.tanh(j - (1 - alpha2) * n)) / 2 for j in range(n)],
    ]
    mean = [[sum(x[j][k] * tau[i][j] for j in range(n)) / sum(tau[i]) for k in range(f)] for i in range(2)]
    var = [
        [sum((x[j][k] - mean[i][k]) ** 2 * tau[i][j] for j in range(n)) / sum(tau[i]) for k in range(f)]
        for i in range(2)
    ]
    out = []
    for j in range(n):
        i = 0 if j < n1 else 1
        out.append([beta + gamma * (x[j][k] - mean[i][k]) / math.sqrt(var[i][k] + eps) for k in range(f)])
    return torch.tensor(out, dtype=torch.float64), tau


@pytest.mark.parametrize("n1,n2,alpha", [(6, 6, (0.75, 0.75)), (5, 9, (0.6, 0.9)), (8, 4, (1.0, 1 / 3))])
def test_ddbn_matches_spec_formulas(n1, n2, alpha):
    torch.manual_seed(0)
    x = torch.randn(n1 + n2, 5, dtype=torch.float64)
    x[n1:] = x[n1:] * 3 + 2  # the second domain has other statistics
    bn = DDBN(5, num_domains=2, alpha_init=0.5, max_timesteps=4).double()
    with torch.no_grad():
        bn.alpha.copy_(torch.tensor(alpha, dtype=torch.float64))
    y = bn(x, 0, domain_sizes=[n1, n2])
    expected, tau = spec_ddbn(x.tolist(), n1, alpha[0], alpha[1], bn.eps, gamma=bn.gamma[0].item())
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    weights, present = contribution_weights(bn.alpha, [n1, n2])
    assert present == [0, 1]
    torch.testing.assert_close(weights, torch.tensor(tau, dtype=torch.float64), rtol=0, atol=1e-15)


def _hat(x):
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


def test_alpha_extremes_give_per_domain_and_whole_batch_bn():
    """alpha_i = n_i / N: per-domain BN; alpha_i = 1: whole-batch BN, up to the tanh edge.

    The edge weights the rows next to the threshold by 0.98, 0.88, 0.5, 0.12, 0.02 instead of
    1 or 0: about 0.64 rows of the other domain leak in. With 256 rows per domain and domain
    means 4 apart that moves a variance by ~0.64 * 4^2 / 256 = 0.04, i.e. x_hat by ~2%, so
    < 0.12 for |x_hat| < 6 (gamma = 1). The two BN readings differ by > 1, so the tolerance
    still tells them apart.
    """
    torch.manual_seed(1)
    n = 256
    x = torch.randn(2 * n, 3, dtype=torch.float64)
    x[n:] += 4.0
    bn = DDBN(3, num_domains=2, gamma_init=1.0, max_timesteps=1).double()
    per_domain = torch.cat([_hat(x[:n]), _hat(x[n:])])
    whole = _hat(x)
    assert (per_domain - whole).abs().max() > 1.0

    with torch.no_grad():
        bn.alpha.fill_(0.5)  # n_i / N
    assert (bn(x, 0, domain_sizes=[n, n]) - per_domain).abs().max() < 0.12
    with torch.no_grad():
        bn.alpha.fill_(1.0)
    assert (bn(x, 0, domain_sizes=[n, n]) - whole).abs().max() < 0.12


def test_one_domain_is_plain_batch_norm_exactly():
    torch.manual_seed(2)
    x = torch.randn(10, 4, dtype=torch.float64)
    dd = DDBN(4, num_domains=2, gamma_init=1.0).double()
    y = dd(x, 0, domain_sizes=[10, 0])
    torch.testing.assert_close(y, _hat(x), rtol=1e-12, atol=1e-12)
    bn = BN(4, gamma_init=1.0).double()
    torch.testing.assert_close(bn(x, 0), y, rtol=1e-12, atol=1e-12)


def test_three_domains_reduce_to_two_when_one_is_empty():
    torch.manual_seed(3)
    x = torch.randn(12, 4, dtype=torch.float64)
    two = DDBN(4, num_domains=2).double()
    three = DDBN(4, num_domains=3).double()
    with torch.no_grad():
        two.alpha.copy_(torch.tensor([0.7, 0.9], dtype=torch.float64))
        three.alpha.fill_(0.55)  # the alphas of pairs with domain 2 must not matter
        three.alpha[alpha_index(0, 1, 3)] = 0.7
        three.alpha[alpha_index(1, 0, 3)] = 0.9
    torch.testing.assert_close(
        three(x, 0, domain_sizes=[7, 5, 0]), two(x, 0, domain_sizes=[7, 5]), rtol=1e-12, atol=1e-12
    )
    # and the empty domain's population statistics are left alone
    assert torch.equal(three.running_mean[2], torch.zeros_like(three.running_mean[2]))


def test_three_domains_all_present_use_pairwise_contributions():
    torch.manual_seed(4)
    three = DDBN(4, num_domains=3).double()
    with torch.no_grad():
        three.alpha.copy_(torch.linspace(0.5, 1.0, 6, dtype=torch.float64))
    sizes = [4, 3, 5]
    weights, present = contribution_weights(three.alpha, sizes)
    assert present == [0, 1, 2] and weights.shape == (3, 12)
    # A row of domain 1 in domain 0's statistics has the weight of the two-domain formula on the
    # sub-batch of domains 0 and 1 alone.
    sub = contribution_weights(three.alpha[[alpha_index(0, 1, 3), alpha_index(1, 0, 3)]], [4, 3])[0]
    torch.testing.assert_close(weights[0, 4:7], sub[0, 4:7])
    y = three(torch.randn(12, 4, dtype=torch.float64), 0, domain_sizes=sizes)
    assert torch.isfinite(y).all()


def test_eval_uses_the_named_domains_population_statistics():
    torch.manual_seed(5)
    bn = DDBN(3, num_domains=2, alpha_init=0.5, max_timesteps=3, momentum=0.5).double()
    for _ in range(20):
        x = torch.cat([torch.randn(8, 3), torch.randn(8, 3) * 2 + 5]).double()
        for t in range(3):
            bn(x, t, domain_sizes=[8, 8])
    bn.eval()
    probe = torch.randn(4, 3, dtype=torch.float64)
    for dom in (0, 1):
        for t, slot in ((1, 1), (7, 2)):  # past the training length: the last slot
            mean, var = bn.running_mean[dom, slot], bn.running_var[dom, slot]
            expected = 0.1 * (probe - mean) / torch.sqrt(var + bn.eps)
            torch.testing.assert_close(bn(probe, t, domain=dom), expected)
    # alpha = n_i / N keeps the domains apart (domain 1 was shifted by 5)
    assert (bn.running_mean[1] - bn.running_mean[0]).mean() > 4
    ids = torch.tensor([0, 1, 1, 0])
    mixed = bn(probe, 1, domain=ids)
    torch.testing.assert_close(mixed[1], bn(probe, 1, domain=1)[1])
    torch.testing.assert_close(mixed[3], bn(probe, 1, domain=0)[3])


def test_padded_rows_enter_no_statistic():
    torch.manual_seed(6)
    bn_a = DDBN(3, num_domains=2).double()
    bn_b = DDBN(3, num_domains=2).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    mask = torch.ones(10, dtype=torch.bool)
    mask[[1, 7]] = False
    x_b = x.clone()
    x_b[[1, 7]] = 1e6  # whatever a padded row holds
    y_a = bn_a(x, 0, domain_sizes=[5, 5], mask=mask)
    y_b = bn_b(x_b, 0, domain_sizes=[5, 5], mask=mask)
    torch.testing.assert_close(y_a[mask], y_b[mask])
    torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean)
    torch.testing.assert_close(bn_a.running_var, bn_b.running_var)


def test_invalid_arguments_are_reported():
    bn = DDBN(3, num_domains=2)
    with pytest.raises(ValueError, match="domain_sizes"):
        bn(torch.randn(4, 3), 0)
    with pytest.raises(ValueError, match="sum to 5"):
        bn(torch.randn(4, 3), 0, domain_sizes=[2, 3])
    with pytest.raises(ValueError, match="shape"):
        bn(torch.randn(4, 2), 0, domain_sizes=[2, 2])
    bn.eval()
    with pytest.raises(ValueError, match="domain="):
        bn(torch.randn(4, 3), 0)
    with pytest.raises(ValueError, match="domain must lie"):
        bn(torch.randn(4, 3), 0, domain=2)


@pytest.mark.parametrize("sizes", [[5, 7], [4, 0], [3, 4, 5], [3, 0, 5]])
def test_analytic_weight_derivatives_match_autograd(sizes):
    """The fused kernel's alpha gradient rests on these derivatives."""
    d = len(sizes)
    alpha = torch.linspace(0.55, 0.95, d * (d - 1), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: contribution_weights(a, sizes)[0], alpha)
    directions, owners, indices = contribution_directions(alpha, sizes)
    present = [i for i in range(d) if sizes[i] > 0]
    used = {alpha_index(i, k, d) for i in present for k in present if k != i}
    assert set(indices) == used
    if directions is None:
        assert not used
        return
    for row, owner, m in zip(directions, owners, indices):
        torch.testing.assert_close(row, jac[owner, :, m], rtol=1e-12, atol=1e-12)
        others = [r for r in range(len(present)) if r != owner]
        assert jac[others][:, :, m].abs().max() == 0  # an alpha moves its own domain's row only


@pytest.mark.parametrize("alpha_init", [0.5, 0.75, 1.0])
def test_alpha_gradient_passes_whole_on_its_bounds(alpha_init):
    # 0.5 is the lower bound of a balanced batch, 1.0 the upper: a tie must not halve the gradient
    bn = DDBN(3, 2, alpha_init=alpha_init)
    bn.effective_alpha().sum().backward()
    assert bn.alpha.grad.tolist() == [1.0, 1.0]
    bn = DDBN(3, 2, alpha_init=0.75)
    with torch.no_grad():
        bn.alpha.fill_(0.3)  # outside [0.5, 1]: the clamp holds it at the bound, no gradient
    value = bn.effective_alpha()
    value.sum().backward()
    assert value.tolist() == [0.5, 0.5] and bn.alpha.grad.tolist() == [0.0, 0.0]
