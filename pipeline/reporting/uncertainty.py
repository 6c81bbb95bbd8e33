"""How much of a difference between methods is noise: the spread of a score over seeds, and the mean
paired difference of two methods with its 95% confidence interval (docs/method.md §10).

A table cell is the mean over splits and seeds. Its spread is the standard deviation over seeds of
the split-averaged score (`spread_over_seeds`): how much the cell would move if the whole table were
run again with another seed, which is what a reader comparing two cells needs to know.

A comparison of two methods (e.g. DDLSTM minus LSTM on one dataset of one pair) pairs their runs on
(split, seed): both saw the same training and test videos and the same seed, so the difference of
each pair removes what the split and seed do to both alike. The interval is Student's t interval of
the mean of those n differences, mean +- t(0.975, n - 1) s / sqrt(n) (`paired_difference`): the
differences are few (4 splits x a few seeds) and their spread is estimated from them, which is
what the t distribution accounts for; a normal interval would be too narrow at n = 4-12. It treats
the n differences as exchangeable, so it measures run-to-run and split-to-split variation of the
difference, not the sampling of test videos within a split.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

# Student's t quantile t(0.975, df) for df = 1..30 (two-sided 95%)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
Z_975 = 1.959964


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table to 30 degrees of freedom, beyond it the Cornish-Fisher expansion of the
    normal quantile (within 2e-4 of the exact value there)."""
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Spread:
    """A mean with the standard deviation of what it averages over (None with a single value)."""

    mean: float
    sd: float | None = None
    n: int = 1  # the values the standard deviation is over (seeds)

    def __str__(self) -> str:
        return f"{self.mean:.1f}" if self.sd is None else f"{self.mean:.1f} ± {self.sd:.1f}"


def _sd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def spread_over_seeds(samples: dict) -> Spread | None:
    """From {(split, seed): value}: per seed the mean over its splits, then their mean and (with two or
    more seeds) their standard deviation; None when there is no value."""
    if not samples:
        return None
    by_seed = defaultdict(list)
    for (_split, seed), value in samples.items():
        by_seed[seed].append(value)
    means = [sum(v) / len(v) for v in by_seed.values()]
    mean = sum(means) / len(means)
    return Spread(mean, _sd(means) if len(means) > 1 else None, len(means))


@dataclass(frozen=True)
class Difference:
    """The mean of n paired differences and its 95% t interval (None below two pairs)."""

    mean: float
    n: int
    low: float | None
    high: float | None


def paired_difference(first: dict, second: dict) -> Difference | None:
    """first - second over the (split, seed) samples both have; None when they share none."""
    shared = sorted(set(first) & set(second))
    if not shared:
        return None
    differences = [first[k] - second[k] for k in shared]
    n = len(differences)
    mean = sum(differences) / n
    if n < 2:
        return Difference(mean, n, None, None)
    half = t_quantile_975(n - 1) * _sd(differences) / math.sqrt(n)
    return Difference(mean, n, mean - half, mean + half)
