"""Stage 1: perturbation importance of every (site, position, channel)."""

from __future__ import annotations

import logging
import math

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from critical_neurons.errors import UsageError
from critical_neurons.method.ranking import Ranking, check_top_n, rank_site_scores
from critical_neurons.method.site_sums import AbsDifferenceSums
from critical_neurons.model.sites import SiteRecorder, base_forward, candidate_sites, require_sites

logger = logging.getLogger(__name__)

SCORE_THRESHOLD = 1e-6  # the reference keeps scores > 1e-6


def batch_sizes(num_samples: int, batch_size: int) -> list[int]:
    """Noisy samples per pass: the first pass also carries the clean text, so it takes one sample fewer."""
    first = min(batch_size - 1, num_samples)
    rest = range(first, num_samples, batch_size)
    return [first] + [min(batch_size, num_samples - start) for start in rest]


def noise_batches(shape: tuple[int, int], sizes: list[int], seed: int):
    """Yield (size, seq, hidden) float32 N(0, 1) noise per pass, sample k always drawn k-th from one CPU generator.

    Drawing per sample on CPU makes every sample's noise independent of the batch size and of the
    device the model sits on.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for size in sizes:
        yield torch.empty((0, *shape)) if size == 0 else torch.stack([torch.randn(shape, generator=generator) for _ in range(size)])


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

    Faithful to the reference: the clean text is the token embeddings, the noisy ones are
    ``embeddings + noise_scale * N(0, 1)`` at every position (absolute scale). Fast: the clean text
    rides as row 0 of the first batch of noisy copies (K + 1 texts in passes of ``batch_size``), the
    LM head is never run, and each site adds a whole batch of |noisy - clean| to one float32 (seq,
    channels) sum on its own device in one pass over memory (:class:`AbsDifferenceSums`). Its own
    memory is two (seq, channels) maps per site (the sum and the clean output), whatever K.
    Sample k's noise does not depend on the batch size, so neither do the scores, up to the float
    rounding of differently shaped kernels in the forward pass.
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
    names = candidate_sites(model, modules)
    input_ids = input_ids.to(model.get_input_embeddings().weight.device)
    forward = base_forward(model)
    differences = AbsDifferenceSums()

    def accumulate(name: str, output: torch.Tensor) -> None:
        if name not in differences.clean:  # the first pass: row 0 is the clean text
            differences.set_clean(name, output[0])
            output = output[1:]
        differences.add(name, output)

    embeddings = model.get_input_embeddings()(input_ids)  # (1, seq, hidden)

    def noisy(noise: torch.Tensor) -> torch.Tensor:
        if embeddings.device.type == "cuda":  # an asynchronous copy: the next batch is drawn while the GPU runs this one
            noise = noise.pin_memory()
        return (embeddings.float() + noise_scale * noise.to(embeddings.device, non_blocking=True)).to(embeddings.dtype)

    batches = noise_batches(tuple(embeddings.shape[1:]), batch_sizes(num_samples, batch_size), seed)
    with SiteRecorder(model, names, accumulate) as recorder:
        first = next(batches)
        forward(inputs_embeds=torch.cat([embeddings, noisy(first)]), use_cache=False)
        require_sites(recorder.fired)  # before the progress bar, so a bad --modules gives one line
        logger.info("Recording %d sites (%d skipped)", len(recorder.fired), len(recorder.skipped))
        with tqdm(total=num_samples, initial=first.shape[0], desc="Noise samples", disable=not progress) as bar:
            for noise in batches:
                forward(inputs_embeds=noisy(noise), use_cache=False)
                bar.update(noise.shape[0])
    order, skipped = recorder.fired, dict(recorder.skipped)
    differences.free_clean()  # before ranking

    scores = {name: differences.sums[name].div_(num_samples) for name in order}
    records, total, non_finite = rank_site_scores(scores, top_n, SCORE_THRESHOLD)
    if non_finite:
        logger.warning("%d non-finite scores were left out of the ranking (overflow in %s?)", non_finite, model.dtype)
    return Ranking(records, total, order, skipped, non_finite)
