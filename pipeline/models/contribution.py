"""Contribution functions of dual-domain batch normalisation (DDBN).

Perrett & Damen, "DDLSTM: Dual-Domain LSTM for Cross-Dataset Action Recognition", CVPR 2019,
eq. 5-6, with the reading fixed in docs/method.md §4: a batch of N samples holds domain 1 in rows
0..n1-1 and domain 2 in rows n1..N-1, and the weight of row j in domain i's batch statistics is

    tau_1(j) = (1 - tanh(j - alpha_1 * N)) / 2
    tau_2(j) = (1 + tanh(j - (1 - alpha_2) * N)) / 2

with alpha_i in [n_i / N, 1]: alpha_i = n_i / N keeps domain i to itself (up to the soft tanh
edge), alpha_i = 1 lets it see the whole batch.

Generalisation to d >= 2 domains (the paper's future work A). The batch holds the domains in
contiguous blocks, in domain order. Every ordered pair (i, k), i != k, has its own alpha_{i,k}:
how far domain i's statistics reach into domain k. It is the paper's two-domain formula applied to
the sub-batch made of blocks i and k alone (the lower-numbered domain first), so
alpha_{i,k} lies in [n_i / (n_i + n_k), 1]. A row of block k contributes to domain i with the
pair's weight; a row of domain i's own block contributes the product of its weights over all
pairs (i, k). Pairs with an empty domain are skipped, so

* with d = 2 both rows of weights are exactly eq. 5 and 6;
* with one non-empty domain the weights are all 1 and DDBN is plain batch normalisation, which
  is how DDLSTM reduces to BNLSTM when n2 = 0;
* a d-domain layer whose extra domains are empty in a batch computes the d = 2 formulas.

Alphas are stored flat, ordered by (i, k) for i in 0..d-1 and k in 0..d-1 with k != i; for d = 2
that is (alpha_1, alpha_2) as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Guards the division by a domain's total weight when a timestep holds none of its rows.
MIN_TOTAL_WEIGHT = 1e-12


def num_alphas(num_domains: int) -> int:
    """Number of cross-contamination parameters of one layer: d (d - 1)."""
    return num_domains * (num_domains - 1)


def alpha_index(i: int, k: int, num_domains: int) -> int:
    """Position of alpha_{i,k} (domain i reaching into domain k) in the flat alpha vector."""
    if i == k or not (0 <= i < num_domains and 0 <= k < num_domains):
        raise ValueError(f"no alpha for domains ({i}, {k}) with {num_domains} domains")
    return i * (num_domains - 1) + (k if k < i else k - 1)


def check_domain_sizes(domain_sizes: Sequence[int], num_domains: int, batch_size: int) -> list[int]:
    """Validate a batch's per-domain row counts and return them as a list of ints."""
    sizes = [int(n) for n in domain_sizes]
    if len(sizes) != num_domains:
        raise ValueError(
            f"domain_sizes has {len(sizes)} entries but the layer has {num_domains} domains"
        )
    if any(n < 0 for n in sizes):
        raise ValueError(f"domain_sizes must be >= 0, got {sizes}")
    if sum(sizes) != batch_size:
        raise ValueError(
            f"domain_sizes {sizes} sum to {sum(sizes)} but the batch has {batch_size} rows"
        )
    return sizes


def alpha_lower_bounds(domain_sizes: Sequence[int]) -> torch.Tensor:
    """Lower bound n_i / (n_i + n_k) of every alpha_{i,k}; 0 where the pair has an empty side.

    An alpha whose pair is not in the batch is not used, so it gets no bound from it.
    """
    d = len(domain_sizes)
    bounds = torch.zeros(num_alphas(d), dtype=torch.float64)
    for i in range(d):
        for k in range(d):
            if k != i and domain_sizes[i] > 0 and domain_sizes[k] > 0:
                bounds[alpha_index(i, k, d)] = domain_sizes[i] / (domain_sizes[i] + domain_sizes[k])
    return bounds


def _pair_weights(alpha: torch.Tensor, n_first: int, n_second: int, of_first: bool) -> torch.Tensor:
    """Paper eq. 5 (of_first) or eq. 6 over a two-block batch of n_first + n_second rows."""
    n = n_first + n_second
    j = torch.arange(n, dtype=alpha.dtype, device=alpha.device)
    if of_first:
        return (1 - torch.tanh(j - alpha * n)) / 2
    return (1 + torch.tanh(j - (1 - alpha) * n)) / 2


def contribution_weights(
    alpha: torch.Tensor, domain_sizes: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """Weights of every batch row in the statistics of every domain present in the batch.

    Args:
        alpha: flat alphas, shape (d (d - 1),), already within their bounds.
        domain_sizes: rows per domain; the batch holds the domains in this order.

    Returns:
        weights: (len(present), N), row r giving the contributions to domain present[r].
        present: the domains with at least one row, in order.
    """
    d = len(domain_sizes)
    present = [i for i in range(d) if domain_sizes[i] > 0]
    rows = []
    for i in present:
        blocks = [alpha.new_ones(n) for n in domain_sizes]
        for k in present:
            if k == i:
                continue
            a = alpha[alpha_index(i, k, d)]
            if i < k:
                pair = _pair_weights(a, domain_sizes[i], domain_sizes[k], of_first=True)
                own_w, other_w = pair[: domain_sizes[i]], pair[domain_sizes[i]:]
            else:
                pair = _pair_weights(a, domain_sizes[k], domain_sizes[i], of_first=False)
                other_w, own_w = pair[: domain_sizes[k]], pair[domain_sizes[k]:]
            # Rows of block k take the pair's weight; own rows multiply in every pair's edge.
            blocks[i] = blocks[i] * own_w
            blocks[k] = other_w
        rows.append(torch.cat(blocks))
    return torch.stack(rows), present


def row_domains(domain_sizes: Sequence[int], present: Sequence[int], device=None) -> torch.Tensor:
    """For every batch row, the index into `present` of its domain, shape (N,)."""
    position = {dom: p for p, dom in enumerate(present)}
    ids = [position[i] for i, n in enumerate(domain_sizes) for _ in range(n)]
    return torch.tensor(ids, dtype=torch.long, device=device)


def contribution_directions(
    alpha: torch.Tensor, domain_sizes: Sequence[int]
) -> tuple[torch.Tensor | None, list[int], list[int]]:
    """Derivatives of the contribution weights with respect to the alphas in use, analytically.

    An alpha_{i,k} moves only domain i's row of weights: the pair weights p of (i, k) change by
    dp / dalpha = (n_i + n_k) / 2 * (1 - tanh(.)^2) on block k and, through the product over
    pairs, on domain i's own block. Returns (directions (e, N), owners, alpha_indices): row r is
    d weights[owners[r]] / d alpha[alpha_indices[r]], owners indexing the present domains;
    (None, [], []) when no pair of domains is present.
    """
    d = len(domain_sizes)
    present = [i for i in range(d) if domain_sizes[i] > 0]
    starts = [sum(domain_sizes[:i]) for i in range(d)]
    n_total = sum(domain_sizes)
    alpha = alpha.detach()
    rows, owners, indices = [], [], []
    for i in present:
        own = slice(starts[i], starts[i] + domain_sizes[i])
        pairs = {}  # k -> (own weights, own slopes, other slopes)
        for k in present:
            if k == i:
                continue
            a = alpha[alpha_index(i, k, d)]
            n_pair = domain_sizes[i] + domain_sizes[k]
            if i < k:
                arg = torch.arange(n_pair, dtype=alpha.dtype, device=alpha.device) - a * n_pair
                weight = (1 - torch.tanh(arg)) / 2
                own_part, other_part = slice(0, domain_sizes[i]), slice(domain_sizes[i], n_pair)
            else:
                arg = torch.arange(n_pair, dtype=alpha.dtype, device=alpha.device) - (1 - a) * n_pair
                weight = (1 + torch.tanh(arg)) / 2
                other_part, own_part = slice(0, domain_sizes[k]), slice(domain_sizes[k], n_pair)
            slope = n_pair / 2 * (1 - torch.tanh(arg) ** 2)  # the same for both forms
            pairs[k] = (weight[own_part], slope[own_part], slope[other_part])
        for k, (_, own_slope, other_slope) in pairs.items():
            row = alpha.new_zeros(n_total)
            own_derivative = own_slope
            for other, (own_weight, _, _) in pairs.items():
                if other != k:
                    own_derivative = own_derivative * own_weight
            row[own] = own_derivative
            row[starts[k]: starts[k] + domain_sizes[k]] = other_slope
            rows.append(row)
            owners.append(present.index(i))
            indices.append(alpha_index(i, k, d))
    if not rows:
        return None, [], []
    return torch.stack(rows), owners, indices
