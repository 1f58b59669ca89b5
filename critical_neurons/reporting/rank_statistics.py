"""Agreement between two rankings: top-k overlap, Spearman's rho and Kendall's tau-b over the channels' ranks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from critical_neurons.outputs.records import Channel


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank (what Spearman's rho needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (ties averaged); nan when either side is constant."""
    rx, ry = average_ranks(np.asarray(x, float)), average_ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b over all pairs (vectorised; fine for the few hundred channels compared here)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    dx, dy = dx[upper], dy[upper]
    denominator = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float((dx * dy).sum() / denominator) if denominator else math.nan


def compare_rankings(reference: Sequence[Channel], other: Sequence[Channel], top_k: int) -> dict[str, Any]:
    """Overlap of the top-k channels and rank correlation over their union.

    A channel's rank is its position in the full distinct-channel list; a channel missing from one
    list ties at that list's end. ``overlap`` = shared channels / k.
    """
    k = min(top_k, len(reference), len(other))
    rank_a = {channel: index for index, channel in enumerate(reference)}
    rank_b = {channel: index for index, channel in enumerate(other)}
    union = list(dict.fromkeys([*reference[:k], *other[:k]]))
    a = [rank_a.get(channel, len(reference)) for channel in union]
    b = [rank_b.get(channel, len(other)) for channel in union]
    shared = len(set(reference[:k]) & set(other[:k]))
    return {
        "top_k": k,
        "overlap": shared / k if k else math.nan,
        "spearman": spearman(a, b) if len(union) > 1 else math.nan,
        "kendall": kendall_tau_b(a, b) if len(union) > 1 else math.nan,
    }
