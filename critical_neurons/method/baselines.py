"""The paper's baselines: activation-magnitude (AM) and gradient-magnitude (GM) rankings, random masking.

AM and GM produce the same :class:`~critical_neurons.method.ranking.Ranking` as stage 1, so their files feed
stage 2 and every evaluator. Random masking draws distinct channels and scores perplexity per draw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.errors import UsageError
from critical_neurons.method.ranking import Ranking, check_top_n, rank_site_scores
from critical_neurons.model.folding import check_fold, masking, resolve_mask_mode
from critical_neurons.model.perplexity import LN10, exp_or_inf, perplexity
from critical_neurons.model.sites import SiteRecorder, base_forward, candidate_sites, require_sites
from critical_neurons.outputs.records import Channel
from critical_neurons.outputs.run_identity import digest

logger = logging.getLogger(__name__)

ACTIVATION_THRESHOLD = 1e-6  # the reference keeps |activation| > 1e-6
GRADIENT_THRESHOLD = 1e-8  # the reference keeps |gradient| > 1e-8
MAX_RUNS = 1000  # random draws per level: each is a perplexity pass over the dataset (fold mode plans all up front)


@torch.no_grad()
def activation_scores(
    model: PreTrainedModel, input_ids: torch.Tensor, *, modules: str | None = None, signed: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """One clean pass: site name -> (seq, channels) float32 |activation| (signed value with ``signed``), in firing order."""
    scores: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> None:
        value = output[0].float()  # (seq, channels)
        scores[name] = value if signed else value.abs()

    with SiteRecorder(model, candidate_sites(model, modules), keep) as recorder:
        base_forward(model)(input_ids=input_ids.to(model.get_input_embeddings().weight.device), use_cache=False)
    require_sites(recorder.fired)
    return {name: scores[name] for name in recorder.fired}, dict(recorder.skipped)


def activation_ranking(
    model: PreTrainedModel, input_ids: torch.Tensor, *, top_n: int = 10_000, modules: str | None = None, signed: bool = False
) -> Ranking:
    """AM baseline: rank (site, position, channel) by |activation| (the reference: signed value, descending)."""
    check_top_n(top_n)
    scores, skipped = activation_scores(model, input_ids, modules=modules, signed=signed)
    records, total, non_finite = rank_site_scores(scores, top_n, ACTIVATION_THRESHOLD)
    return Ranking(records, total, list(scores), skipped, non_finite)


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in float32: what HF returns for ``labels=input_ids``."""
    return F.cross_entropy(logits[0, :-1].float(), input_ids[0, 1:].to(logits.device))


GRAPHS = ("intact", "cut")


def gradient_scores(
    model: PreTrainedModel, input_ids: torch.Tensor, *, modules: str | None = None, signed: bool = False, graph: str = "intact"
) -> tuple[dict[str, torch.Tensor], dict[str, str], float]:
    """site name -> (seq, channels) float32 |d loss / d output| (signed with ``signed``), the skipped sites, and the loss.

    ``graph="intact"``: gradients are taken with respect to the sites' real outputs. ``"cut"``
    reproduces the reference's hook, which replaced each output by a detached clone: the graph is cut
    at every site, so only sites whose outputs reach the loss through un-hooked operations (o_proj,
    down_proj) get a gradient, the same map in every layer, and the others score zero. Scores come
    in firing order, or in backward order for ``cut`` (the reference's tie order). Inputs enter as
    embeddings that require grad, so every site is in the graph even with frozen weights;
    ``autograd.grad`` then computes no weight gradients.
    """
    if graph not in GRAPHS:
        raise UsageError("--graph", f"must be one of {', '.join(GRAPHS)}, got {graph!r}", "use intact or cut")
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> torch.Tensor | None:
        if graph == "cut":
            output = output.detach().clone().requires_grad_(True)
            outputs[name] = output
            return output  # replaces the module's output: the graph stops here
        outputs[name] = output
        return None

    input_ids = input_ids.to(model.get_input_embeddings().weight.device)
    with torch.enable_grad():
        embeddings = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)  # (1, seq, hidden)
        with SiteRecorder(model, candidate_sites(model, modules), keep) as recorder:
            logits = model(inputs_embeds=embeddings, use_cache=False).logits
        require_sites(recorder.fired)
        loss = next_token_loss(logits, input_ids)
        tensors = [outputs[name] for name in recorder.fired]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    scores = {}
    for name, tensor, grad in zip(recorder.fired, tensors, grads):
        grad = torch.zeros_like(tensor, dtype=torch.float32) if grad is None else grad.float()  # unused: no effect on the loss
        scores[name] = grad[0] if signed else grad[0].abs()  # (seq, channels)
    if graph == "cut":
        scores = dict(reversed(scores.items()))
    return scores, dict(recorder.skipped), float(loss.detach())


def gradient_ranking(
    model: PreTrainedModel, input_ids: torch.Tensor, *, top_n: int = 10_000, modules: str | None = None, signed: bool = False, graph: str = "intact"
) -> tuple[Ranking, float]:
    """GM baseline: rank (site, position, channel) by |d loss / d output|; returns the ranking and the loss."""
    check_top_n(top_n)
    scores, skipped, loss = gradient_scores(model, input_ids, modules=modules, signed=signed, graph=graph)
    records, total, non_finite = rank_site_scores(scores, top_n, GRADIENT_THRESHOLD)
    return Ranking(records, total, list(scores), skipped, non_finite), loss


@dataclass(frozen=True)
class Population:
    """Channels random masking draws from: sites with their widths, numbered 0..size-1 site after site."""

    kind: str
    sites: tuple[str, ...]
    widths: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.widths)

    def channels(self, flat: np.ndarray) -> list[Channel]:
        """Flat indices -> channels, vectorised."""
        ends = np.cumsum(self.widths)
        site = np.searchsorted(ends, flat, side="right")
        hidden = flat - (ends[site] - np.asarray(self.widths)[site])
        return [Channel(self.sites[s], int(h)) for s, h in zip(site.tolist(), hidden.tolist())]


@torch.no_grad()
def site_population(model: PreTrainedModel, probe_ids: torch.Tensor, modules: str | None = None) -> Population:
    """Stage 1's population: every channel of every site whose output is (batch, seq, channels), widths from one clean pass."""
    widths: dict[str, int] = {}

    def keep(name: str, output: torch.Tensor) -> None:
        widths[name] = output.shape[-1]

    with SiteRecorder(model, candidate_sites(model, modules), keep) as recorder:
        base_forward(model)(input_ids=probe_ids.to(model.get_input_embeddings().weight.device), use_cache=False)
    require_sites(recorder.fired)
    return Population("sites", tuple(recorder.fired), tuple(widths[name] for name in recorder.fired))


def reference_population(model: PreTrainedModel) -> Population:
    """The reference's population: every ``nn.Linear`` output channel, lm_head included (one per vocabulary logit)."""
    linears = [(name, module.out_features) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise UsageError("--population", "this model has no nn.Linear modules", "use --population sites")
    names, widths = zip(*linears)
    return Population("reference", tuple(names), tuple(widths))


def check_level(population: Population, count: int) -> None:
    if count > population.size:
        raise UsageError("--masking_levels", f"level {count} exceeds the {population.size} channels of the population", "use smaller levels")


def draw_channels(population: Population, count: int, seed: int, level: int, run: int) -> list[Channel]:
    """``count`` distinct channels, uniformly without replacement, from a generator seeded by (seed, level, run).

    ``Generator.choice(replace=False)`` costs O(count) for a large population: no rejection loop,
    no combinatorics; a draw depends only on its own (seed, level, run).
    """
    check_level(population, count)
    generator = np.random.default_rng([seed, level, run])
    return population.channels(generator.choice(population.size, size=count, replace=False))


def _log10_mean(log10_values: np.ndarray) -> float:
    """log10 of the mean of 10**x, without overflow."""
    values = log10_values * LN10
    peak = values.max()
    return float((peak + np.log(np.exp(values - peak).mean())) / LN10)


def _perplexity_statistics(log10_values: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-run perplexities from their log10 values, and their sample std (n-1; 0 for one run)."""
    values = np.asarray([exp_or_inf(value * LN10) for value in log10_values.tolist()])
    with np.errstate(invalid="ignore"):  # inf - inf in the std of overflowed runs gives nan (null), as it should
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return values, std


def _reference_statistics(log10_perplexities: Sequence[float]) -> dict[str, Any]:
    """The same statistics of the authors' perplexity per run (texts weighted by L), under ``reference_`` names."""
    log10_values = np.asarray(log10_perplexities, dtype=np.float64)
    values, std = _perplexity_statistics(log10_values)
    return {
        "reference_perplexities": values.tolist(),
        "reference_log10_perplexities": log10_values.tolist(),
        "reference_mean_perplexity": float(values.mean()),
        "reference_std_perplexity": std,
        "reference_min_perplexity": float(values.min()),
        "reference_max_perplexity": float(values.max()),
        "reference_log10_mean_perplexity": _log10_mean(log10_values),
    }


def level_statistics(
    level: int, log10_perplexities: Sequence[float], digests: Sequence[str], reference_log10_perplexities: Sequence[float] | None = None
) -> dict[str, Any]:
    """The reference's per-level statistics (sample std, n-1), with log10 values beside those that can overflow.

    A perplexity above ~1e308 is inf (null in JSON); its log10 and the log10 of the mean stay finite.
    ``reference_log10_perplexities`` (the authors' L-weighted figure of each run) adds the same
    statistics of those under ``reference_`` names.
    """
    log10_values = np.asarray(log10_perplexities, dtype=np.float64)
    values, std = _perplexity_statistics(log10_values)
    several = len(values) > 1
    reference = _reference_statistics(reference_log10_perplexities) if reference_log10_perplexities is not None else {}
    return {
        "masking_level": level,
        "neurons_masked": level,
        "distinct_channels_masked": level,  # draws are distinct channels
        "num_runs": len(values),
        "actual_runs": len(values),
        "perplexities": values.tolist(),
        "log10_perplexities": log10_values.tolist(),
        "mean_perplexity": float(values.mean()),
        "std_perplexity": std,
        "min_perplexity": float(values.min()),
        "max_perplexity": float(values.max()),
        "log10_mean_perplexity": _log10_mean(log10_values),
        "mean_log10_perplexity": float(log10_values.mean()),
        "std_log10_perplexity": float(log10_values.std(ddof=1)) if several else 0.0,
        "min_log10_perplexity": float(log10_values.min()),
        "max_log10_perplexity": float(log10_values.max()),
        **reference,
        "unique_neuron_sets": len(set(digests)) == len(digests),
        "channel_set_digests": list(digests),
    }


def random_masking_level(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    population: Population,
    level: int,
    *,
    num_runs: int = 10,
    seed: int = 42,
    max_length: int = 512,
    batch_size: int = 8,
    mask_mode: str = "hook",
) -> dict[str, Any]:
    """Perplexity with ``num_runs`` random draws of ``level`` distinct channels masked, and their statistics.

    Level 0 masks nothing, so it is evaluated once (the reference ran ``num_runs`` identical passes).
    Levels run through :class:`~critical_neurons.evaluation.runner.LevelRunner` like every evaluator's.
    ``mask_mode`` is resolved per draw (``auto`` folds a draw when all its channels fold); each
    folded draw is checked against the hooks first, and the modes and checks are recorded.
    """
    if not 1 <= num_runs <= MAX_RUNS:
        raise UsageError("--num_runs", f"must be between 1 and {MAX_RUNS}, got {num_runs}", "use e.g. 10")
    check_level(population, level)
    log10_values, reference_log10_values, digests, modes, checks = [], [], [], [], []
    runs = num_runs if level else 1
    for run in range(runs):
        channels = draw_channels(population, level, seed, level, run)
        mode = resolve_mask_mode(model, channels, mask_mode)
        modes.append(mode)
        if mode == "fold":
            checks.append(check_fold(model, tokenizer, channels))
        with masking(model, channels, mode):
            result = perplexity(model, tokenizer, texts, max_length=max_length, batch_size=batch_size, desc=f"Level {level} run {run + 1}")
        log10_values.append(result.log10_perplexity)
        reference_log10_values.append(result.reference_log10_perplexity)
        digests.append(digest(sorted(channels)))
        logger.info("Run %d/%d: perplexity %.4g (log10 %.3f; the authors' L weighting: %.4g)", run + 1, runs, result.perplexity, result.log10_perplexity, result.reference_perplexity)
    entry = level_statistics(level, log10_values, digests, reference_log10_values)
    if level:
        entry.update(mask_modes=modes, fold_checks=checks)
    logger.info("Mean perplexity: %.4g ± %.4g; range [%.4g, %.4g]", entry["mean_perplexity"], entry["std_perplexity"], entry["min_perplexity"], entry["max_perplexity"])
    return entry
