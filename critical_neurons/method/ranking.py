"""Turning per-site score maps into a ranked record list, without a Python loop over elements."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from critical_neurons.errors import UsageError
from critical_neurons.outputs.records import NeuronRecord, distinct_channels

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


CHUNK = 1 << 20  # elements per chunk of the flattened scores
GROUP = 64  # scores per group whose maximum bounds the cut-off


def group_maxima(values: torch.Tensor) -> torch.Tensor:
    """The maximum of each run of GROUP values (the last run may be shorter)."""
    whole = values.numel() - values.numel() % GROUP
    maxima = values[:whole].view(-1, GROUP).amax(1)
    return torch.cat([maxima, values[whole:].amax(0, keepdim=True)]) if whole < values.numel() else maxima


def rank_site_scores(
    scores: dict[str, torch.Tensor], top_n: int, threshold: float
) -> tuple[list[NeuronRecord], int, int]:
    """Rank every (site, position, channel) score, best first.

    ``scores`` maps site name -> (seq, channels) float tensor, in firing order. A score is a
    candidate when ``|score| > threshold``; candidates sort descending by the score as given (a
    magnitude, or a signed value for the reference's AM/GM rankings),
    ties broken by site order, then position, then channel, as the reference's stable sort did.
    The sites on one device are flattened into one vector in firing order, so a flat index orders
    ties exactly that way; per device, a bound from group maxima and one ``topk`` over what passes it
    preselect the top ``top_n`` (and every score tied with its cut-off), and one merge on CPU orders
    the rest.
    Returns (records, candidate count, non-finite count); non-finite scores are never ranked.
    """
    names = list(scores)
    if not names:
        return [], 0, 0
    widths = [score.shape[-1] for score in scores.values()]
    sizes = torch.tensor([score.numel() for score in scores.values()])
    starts = torch.cumsum(sizes, 0) - sizes  # each site's offset in the global flat numbering
    by_device: dict[torch.device, list[int]] = {}
    for site_id, score in enumerate(scores.values()):
        by_device.setdefault(score.device, []).append(site_id)
    values, global_ids = [], []
    total = non_finite = 0
    for device_sites in by_device.values():
        flat = torch.cat([scores[names[site_id]].reshape(-1) for site_id in device_sites])  # a copy: edited in place below
        chunks = flat.split(CHUNK)  # views: chunk-wise work keeps temporaries small on a 10^7-element vector
        for chunk in chunks:
            magnitude = chunk.abs()
            finite = magnitude < torch.inf  # NaN compares false too
            non_finite += chunk.numel() - int(finite.sum())
            keep = finite.logical_and_(magnitude > threshold)
            total += int(keep.sum())
            chunk.masked_fill_(keep.logical_not_(), -torch.inf)  # candidates keep their score, the rest can never be selected
        # A lower bound of the top_n-th score: the top_n-th largest maximum of groups of GROUP scores
        # (top_n groups each hold a score at least that large). One top-k over the group maxima
        # instead of one over every score; few scores pass the bound.
        maxima = torch.cat([group_maxima(chunk) for chunk in chunks])
        bound = torch.topk(maxima, top_n, sorted=False).values.min() if maxima.numel() > top_n else -torch.inf
        index = torch.cat([((chunk >= bound) & (chunk > -torch.inf)).nonzero().squeeze(1) + start for start, chunk in zip(range(0, flat.numel(), CHUNK), chunks)])
        selected = flat[index]
        if selected.numel() > top_n:  # every candidate at or above the exact cut-off, ties with it included
            index = index[selected >= torch.topk(selected, top_n, sorted=False).values.min()]
        values.append(flat[index].cpu())
        # Device-local flat index -> global flat index (site offsets in firing order).
        local_sizes = sizes[device_sites]
        local_starts = torch.cumsum(local_sizes, 0) - local_sizes
        index = index.cpu()
        position = torch.searchsorted(torch.cumsum(local_sizes, 0), index, right=True)
        global_ids.append(starts[device_sites][position] + index - local_starts[position])
    merged_values, merged_ids = torch.cat(values), torch.cat(global_ids)
    by_id = torch.argsort(merged_ids, stable=True)  # firing order, position, channel ...
    merged_values, merged_ids = merged_values[by_id], merged_ids[by_id]
    order = torch.sort(merged_values, descending=True, stable=True).indices[:top_n]  # ... under the score
    top_values, top_ids = merged_values[order], merged_ids[order]
    top_sites = torch.searchsorted(torch.cumsum(sizes, 0), top_ids, right=True)
    top_local = top_ids - starts[top_sites]
    records = [
        NeuronRecord(names[site], local // widths[site], local % widths[site], value)
        for value, site, local in zip(top_values.tolist(), top_sites.tolist(), top_local.tolist())
    ]
    return records, total, non_finite


def log_ranking(ranking: Ranking, score_name: str) -> None:
    """Log the candidate count and the top 10 records, as the reference did."""
    logger.info("Found %d records above threshold; writing the top %d (%d distinct channels)", ranking.total_candidates, len(ranking.records), ranking.num_distinct_channels)
    for rank, record in enumerate(ranking.records[:10], start=1):
        logger.info("Rank %d: %s channel %d position %d, %s %.6g", rank, record.layer_name, record.hidden_idx, record.seq_idx, score_name, record.score)

