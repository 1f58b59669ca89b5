"""Stage 1: perturbation importance of every (site, position, channel)."""

from __future__ import annotations

import logging
import math

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from critical_neurons.errors import UsageError
from critical_neurons.ranking import Ranking, check_top_n, rank_site_scores
from critical_neurons.sites import SiteRecorder, base_forward, candidate_sites, require_sites

logger = logging.getLogger(__name__)

SCORE_THRESHOLD = 1e-6  # the reference keeps scores > 1e-6


def noise_batches(shape: tuple[int, int], num_samples: int, batch_size: int, seed: int):
    """Yield (batch, seq, hidden) float32 N(0, 1) noise, sample k always drawn k-th from one CPU generator.

    Drawing per sample on CPU makes every sample's noise independent of the batch size and of the
    device the model sits on.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        yield torch.stack([torch.randn(shape, generator=generator) for _ in range(count)])


@torch.no_grad()
def perturbation_importance(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    noise_scale: float = 5.0,
    num_samples: int = 100,
    batch_size: int = 8,
    top_n: int = 10_000,
    seed: int = 42,
    modules: str | None = None,
    progress: bool = True,
) -> Ranking:
    """Score = mean over K noisy passes of |clean - noisy| site output; ranked best first.

    Faithful to the reference: clean pass from token ids, noisy passes from
    ``embeddings + noise_scale * N(0, 1)`` at every position (absolute scale). Fast: the K noisy copies
    run in batches and the LM head is never run; each site keeps one float32 sum (seq, channels) on its
    own device and adds each pass's whole batch to it with one reduction, so its own memory is
    two (seq, channels) maps per site plus one (batch, seq, channels) buffer per device, whatever K.
    Sample k's noise does not depend on the batch size, so neither do the scores, up to the float
    rounding of differently shaped kernels.
    """
    if num_samples < 1:
        raise UsageError("--num_samples", f"must be at least 1, got {num_samples}", "use e.g. 100")
    if not math.isfinite(noise_scale) or noise_scale < 0:
        raise UsageError("--noise_scale", f"must be a finite non-negative number, got {noise_scale}", "use e.g. 5")
    if noise_scale == 0:
        logger.warning("Noise scale 0: every noisy pass equals the clean one, so no score exceeds the threshold and the ranking is empty")
    if batch_size < 1:
        raise UsageError("--batch_size", f"must be at least 1, got {batch_size}", "use e.g. 8")
    check_top_n(top_n)
    input_ids = input_ids.to(model.get_input_embeddings().weight.device)
    forward = base_forward(model)
    clean: dict[str, torch.Tensor] = {}
    sums: dict[str, torch.Tensor] = {}

    def keep_clean(name: str, output: torch.Tensor) -> None:
        clean[name] = output[0].float()  # (seq, channels)
        sums[name] = torch.zeros_like(clean[name])

    scratch: dict[torch.device, torch.Tensor] = {}

    def accumulate(name: str, output: torch.Tensor) -> None:
        if name not in sums:
            return
        # One reused float32 buffer per device: a fresh (batch, seq, channels) temporary per site and
        # pass costs a page-faulting allocation on CPU (~1.5x the time of this hook).
        buffer = scratch.get(output.device)
        if buffer is None or buffer.numel() < output.numel():
            buffer = scratch[output.device] = torch.empty(output.numel(), dtype=torch.float32, device=output.device)
        diff = torch.sub(output, clean[name], out=buffer[: output.numel()].view(output.shape)).abs_()
        sums[name].add_(diff.sum(0))  # one reduction over the batch per site and pass

    names = candidate_sites(model, modules)
    with SiteRecorder(model, names, keep_clean) as recorder:
        forward(input_ids=input_ids, use_cache=False)
    skipped = dict(recorder.skipped)
    order = recorder.fired
    require_sites(order)
    logger.info("Recording %d sites (%d skipped)", len(order), len(skipped))

    embeddings = model.get_input_embeddings()(input_ids)  # (1, seq, hidden)
    bar = tqdm(total=num_samples, desc="Noise samples", disable=not progress)
    with SiteRecorder(model, order, accumulate):
        for noise in noise_batches(tuple(embeddings.shape[1:]), num_samples, batch_size, seed):
            noisy = (embeddings.float() + noise_scale * noise.to(embeddings.device)).to(embeddings.dtype)
            forward(inputs_embeds=noisy, use_cache=False)
            bar.update(noise.shape[0])
    bar.close()
    clean.clear()  # free the clean outputs before ranking

    scores = {name: sums[name].div_(num_samples) for name in order}
    records, total, non_finite = rank_site_scores(scores, top_n, SCORE_THRESHOLD)
    if non_finite:
        logger.warning("%d non-finite scores were left out of the ranking (overflow in %s?)", non_finite, model.dtype)
    return Ranking(records, total, order, skipped, non_finite)
