"""Turning per-site score maps into a ranked record list, without a Python loop over elements."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from critical_neurons.errors import UsageError
from critical_neurons.records import NeuronRecord, distinct_channels

logger = logging.getLogger(__name__)


@dataclass
class Ranking:
    """The best records first, the count of candidates above the threshold, and the sites used."""

    records: list[NeuronRecord]
    total_candidates: int
    sites: list[str]
    skipped_sites: dict[str, str] = field(default_factory=dict)
    non_finite_scores: int = 0

    @property
    def num_distinct_channels(self) -> int:
        return len(distinct_channels(self.records))


def check_top_n(top_n: int) -> None:
    if top_n < 1:
        raise UsageError("--top_n", f"must be at least 1, got {top_n}", "use e.g. 10000")


def rank_site_scores(
    scores: dict[str, torch.Tensor], top_n: int, threshold: float
) -> tuple[list[NeuronRecord], int, int]:
    """Rank every (site, position, channel) score, best first.

    ``scores`` maps site name -> (seq, channels) float tensor, in firing order. A score is a
    candidate when ``|score| > threshold``; candidates sort descending by the score as given (a
    magnitude, or a signed value for the reference's AM/GM rankings),
    ties broken by site order, then position, then channel, as the reference's stable sort did.
    Each site contributes its own top ``top_n`` (selected on its device) before one merge on CPU.
    Returns (records, candidate count, non-finite count); non-finite scores are never ranked.
    """
    values, site_ids, flat_ids = [], [], []
    total = torch.zeros((), dtype=torch.long)
    non_finite = torch.zeros((), dtype=torch.long)
    widths = []
    for site_id, score in enumerate(scores.values()):
        flat = score.reshape(-1)
        finite = torch.isfinite(flat)
        non_finite += (~finite).sum().cpu()
        keep = finite & (flat.abs() > threshold)
        total += keep.sum().cpu()
        # Preselect with topk, then keep every score tied with the cut-off so the stable sort sees all ties.
        candidates = torch.where(keep, flat, torch.full_like(flat, -torch.inf))
        cutoff = torch.topk(candidates, min(top_n, flat.numel()), sorted=False).values.min()
        index = (keep & (candidates >= cutoff)).nonzero().squeeze(1)
        kept = flat[index]
        order = torch.sort(kept, descending=True, stable=True).indices[:top_n]
        values.append(kept[order].cpu())
        flat_ids.append(index[order].cpu())
        site_ids.append(torch.full((order.numel(),), site_id, dtype=torch.long))
        widths.append(score.shape[-1])
    if not values:
        return [], 0, 0
    merged_values = torch.cat(values)
    order = torch.sort(merged_values, descending=True, stable=True).indices[:top_n]
    names = list(scores)
    top_values = merged_values[order].tolist()
    top_sites = torch.cat(site_ids)[order].tolist()
    top_flat = torch.cat(flat_ids)[order].tolist()
    records = [
        NeuronRecord(names[site], flat // widths[site], flat % widths[site], value)
        for value, site, flat in zip(top_values, top_sites, top_flat)
    ]
    return records, int(total), int(non_finite)


def log_ranking(ranking: Ranking, score_name: str) -> None:
    """Log the candidate count and the top 10 records, as the reference did."""
    logger.info("Found %d records above threshold; writing the top %d (%d distinct channels)", ranking.total_candidates, len(ranking.records), ranking.num_distinct_channels)
    for rank, record in enumerate(ranking.records[:10], start=1):
        logger.info("Rank %d: %s channel %d position %d, %s %.6g", rank, record.layer_name, record.hidden_idx, record.seq_idx, score_name, record.score)


def ranking_file(
    ranking: Ranking,
    *,
    method: str,
    input_text: str,
    noise_scale: float | None,
    num_samples: int,
    num_tokens: int,
    model: dict[str, Any],
    model_info: dict[str, Any],
    metadata: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The ranking-file schema shared by Stage 1, AM and GM: the reference's keys, then how it was made.

    ``model`` is the identity block (:func:`critical_neurons.identity.model_identity`) every consumer checks.
    """
    return {
        "kind": "ranking",
        "method": method,
        "input_text": input_text,
        "noise_scale": noise_scale,
        "num_samples": num_samples,
        "total_neurons": ranking.total_candidates,
        "top_neurons": [record.to_dict() for record in ranking.records],
        **extra,
        "num_distinct_channels": ranking.num_distinct_channels,
        "num_tokens": num_tokens,
        "sites": ranking.sites,
        "skipped_sites": ranking.skipped_sites,
        "non_finite_scores": ranking.non_finite_scores,
        "model": model,
        "model_info": model_info,
        "metadata": metadata,
    }
