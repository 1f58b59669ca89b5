"""Turning per-site score maps into a ranked record list, without a Python loop over elements."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from critical_neurons.records import NeuronRecord, distinct_channels


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


def rank_site_scores(
    scores: dict[str, torch.Tensor], top_n: int, threshold: float
) -> tuple[list[NeuronRecord], int, int]:
    """Rank every (site, position, channel) score, best first.

    ``scores`` maps site name -> (seq, channels) float tensor, in firing order. A score is a
    candidate when ``|score| > threshold``; candidates sort descending by the score as given (a
    magnitude, or a signed value for the reference's AM/GM rankings),
    ties broken by site order, then position, then channel, as the reference's stable sort did.
    Each site contributes its own top ``top_n`` (kept on its device) before one merge on CPU.
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
        index = keep.nonzero().squeeze(1)
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
