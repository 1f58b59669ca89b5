"""Batched greedy generation with left padding; masks apply at every generated token.

:func:`generate` is the one generation path of every generative evaluator. How it runs is fixed once
per run by :func:`plan_generation`: the batch size (``auto`` on CUDA: the largest that fits in GPU
memory) and whether the decode step is compiled. A compiled run keeps every shape and address static
(one static KV cache per run, every batch padded to the batch size), so the model compiles once
and serves every masking level: folded masks edit the weights in place, and the compiled graphs
read the parameters at every call, so they see each level's weights (``tests/test_generation.py``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from weakref import WeakKeyDictionary

import torch
import transformers
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StaticCache
from transformers.generation.configuration_utils import CompileConfig

from critical_neurons.errors import UsageError
from critical_neurons.model.perplexity import pad_batch

logger = logging.getLogger(__name__)

COMPILE_CHOICES = ("auto", "on", "off")
DEFAULT_BATCH_SIZE = 8  # CPU, and any run that names no size off CUDA
AUTO_BATCH_LIMIT = 512  # the auto probe starts here (or at the number of prompts, if fewer)


@dataclass(frozen=True)
class GenerationSettings:
    """How prompts become responses: every setting here can change the responses (batch size and
    compilation through float rounding), so all enter the run key."""

    max_new_tokens: int
    batch_size: int = DEFAULT_BATCH_SIZE
    max_length: int = 2048
    chat_template: bool = False
    compile: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_input_length: int, chat_template: bool) -> list[list[int]]:
    """Token ids per prompt: raw text with special tokens (the reference), or the tokenizer's chat template.

    Over-long prompts lose their beginning, not their end: the reference cut the end, which can
    drop the trailing answer instruction.
    """
    if chat_template:
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True) for prompt in prompts]
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    else:
        encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return [ids[-max_input_length:] for ids in encoded]


def _on_cuda_only(model: PreTrainedModel) -> bool:
    return all(parameter.device.type == "cuda" for parameter in model.parameters())


def _compile_options(model: PreTrainedModel, compile: bool) -> dict[str, Any]:
    """``generate`` options for a compiled decode step or an eager one.

    On CUDA the compiled decode step also replays as a CUDA graph (``reduce-overhead``); elsewhere
    (the CPU tests) inductor's default mode runs, which transformers compiles only when told to.
    Eager is said explicitly: a model whose generation config asks for a static cache compiles otherwise.
    """
    if not compile:
        return {"disable_compile": True}
    config = CompileConfig(mode="reduce-overhead" if _on_cuda_only(model) else "default")
    config._compile_all_devices = True  # transformers' switch for compiling off CUDA
    return {"compile_config": config}


# generate's argument for a cache object: ``cache`` since transformers 5.24 (``past_key_values`` still
# works there, with a deprecation warning); a GPU host may carry an older transformers than requirements.txt.
CACHE_ARGUMENT = "cache" if tuple(int(part) for part in transformers.__version__.split(".")[:2]) >= (5, 24) else "past_key_values"

# One static KV cache per model, kept between calls: ((rows, dtype, device), length, cache).
_run_caches: WeakKeyDictionary[PreTrainedModel, tuple[tuple, int, StaticCache]] = WeakKeyDictionary()


def run_cache(model: PreTrainedModel, batch_size: int, cache_length: int) -> StaticCache:
    """The model's static KV cache for batches of ``batch_size`` rows and ``cache_length`` tokens, emptied.

    ``generate`` would allocate a new cache per call; a compiled decode step replayed as a CUDA graph
    would then record again for every batch, since the cache's addresses are part of the graph. One
    cache per model instead, reused by every batch and masking level, and replaced only when the
    batch size, the model's dtype or device changes or a call needs more than its length (it never
    shrinks, so alternating prompt sets do not reallocate).
    """
    shape = (batch_size, model.dtype, model.get_input_embeddings().weight.device)
    held_shape, held_length, cache = _run_caches.get(model, (None, 0, None))
    same_shape = held_shape == shape
    if not same_shape or held_length < cache_length:
        length = max(held_length, cache_length) if same_shape else cache_length
        cache = StaticCache(config=model.config, max_cache_len=length)
        _run_caches[model] = (shape, length, cache)
    cache.reset()
    return cache


def static_cache_options(model: PreTrainedModel, batch_size: int, cache_length: int) -> dict[str, Any]:
    """``generate`` options for one compiled batch: the emptied :func:`run_cache` and the compiled decode step."""
    return {CACHE_ARGUMENT: run_cache(model, batch_size, cache_length), **_compile_options(model, True)}


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_input_length: int = 2048,
    chat_template: bool = False,
    compile: bool = False,
    progress: bool = True,
    desc: str = "Generating",
) -> list[str]:
    """Greedy continuations (generated part only, special tokens dropped), in prompt order.

    Prompts run longest first so each left-padded batch holds similar lengths. ``compile``: a static
    KV cache at least as long as the longest prompt plus ``max_new_tokens``, shared by every batch and
    call (:func:`run_cache`), and a compiled decode step; the last batch is padded with
    copies of its last prompt to ``batch_size`` rows, so no shape or address changes and nothing
    recompiles or records again between batches or calls on the same prompts.
    """
    encoded = encode_prompts(tokenizer, prompts, max_input_length, chat_template)
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]), reverse=True)
    device = model.get_input_embeddings().weight.device
    options = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id, **_compile_options(model, compile)}
    cache_length = len(encoded[order[0]]) + max_new_tokens if encoded else 0
    outputs: list[str] = [""] * len(encoded)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        batch = order[start : start + batch_size]
        rows = batch + batch[-1:] * (batch_size - len(batch)) if compile else batch
        input_ids, attention_mask = pad_batch([encoded[index] for index in rows], tokenizer.pad_token_id, left=True)
        if compile:
            options[CACHE_ARGUMENT] = run_cache(model, batch_size, cache_length)
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **options)
        texts = tokenizer.batch_decode(generated[: len(batch), input_ids.shape[1] :], skip_special_tokens=True)
        for index, text in zip(batch, texts):
            outputs[index] = text
    return outputs


def resolve_compile(model: PreTrainedModel, requested: str, *, hooks: bool) -> bool:
    """``auto``: compile when every parameter is on CUDA and no level masks by hooks; ``on`` refuses hooks
    (adding and removing them would recompile at every level) and a model partly off the GPU."""
    if requested not in COMPILE_CHOICES:
        raise UsageError("--compile", f"must be one of {', '.join(COMPILE_CHOICES)}, got {requested!r}", "use auto, on or off")
    if requested == "off":
        return False
    if requested == "auto":
        return _on_cuda_only(model) and not hooks
    if hooks:
        raise UsageError("--compile", "on needs folded masks: hooks would recompile the model at every masking level", "use --mask_mode fold, or --compile auto")
    devices = {parameter.device.type for parameter in model.parameters()}
    if "cuda" in devices and len(devices) > 1:
        raise UsageError("--compile", f"on needs the whole model on GPUs, this one is on {', '.join(sorted(devices))}", "use --compile off or a --device_map without CPU offload")
    return True


def _probe(model: PreTrainedModel, batch_size: int, prompt_length: int, cache_length: int, pad_token_id: int) -> None:
    """The memory high point of a batch: the prefill of ``prompt_length`` tokens into a full-length
    static cache, then one decode step (eager: compiling once per size tried would cost minutes)."""
    device = model.get_input_embeddings().weight.device
    input_ids = torch.full((batch_size, prompt_length), pad_token_id, dtype=torch.long, device=device)
    model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=2,
        min_new_tokens=2,
        do_sample=False,
        pad_token_id=pad_token_id,
        cache_implementation="static",  # a fresh cache per size tried, freed after it
        max_cache_len=cache_length,
        disable_compile=True,
    )


def largest_batch(model: PreTrainedModel, *, limit: int, prompt_length: int, cache_length: int, pad_token_id: int) -> int:
    """The largest batch size up to ``limit`` whose probe fits in GPU memory, halving on out-of-memory
    (as lm-eval's ``batch_size=auto``). One sequence that does not fit is an error naming the lengths."""
    size = limit
    while True:
        try:
            _probe(model, size, prompt_length, cache_length, pad_token_id)
            fits = True
        except torch.OutOfMemoryError:
            fits = False
        gc.collect()  # the failed attempt's tensors, held by the exception's frames until here
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if fits:
            return size
        if size == 1:
            raise UsageError("--batch_size", f"one sequence of {cache_length} tokens does not fit in GPU memory", "lower --max_length or --max_new_tokens, or spread the model over more GPUs (--device_map auto)")
        size //= 2
        logger.info("Batch size probe: out of memory, trying %d", size)


def plan_generation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    max_length: int = 2048,
    chat_template: bool = False,
    batch_size: int | str | None = None,
    compile: str = "auto",
    hooks: bool = False,
) -> GenerationSettings:
    """This run's generation settings, found once and used for every masking level.

    ``batch_size``: a number; ``auto`` (the default, None, on CUDA): the largest batch whose KV
    cache and activations for these prompts fit in free GPU memory (:func:`largest_batch`, at most
    :data:`AUTO_BATCH_LIMIT` and the number of prompts); off CUDA ``auto`` falls back to
    :data:`DEFAULT_BATCH_SIZE` with one warning. ``hooks``: some level masks by forward hooks.
    """
    compiled = resolve_compile(model, compile, hooks=hooks)
    if isinstance(batch_size, int):
        size = batch_size
    elif batch_size not in (None, "auto"):
        raise UsageError("--batch_size", f"must be a positive integer or auto, got {batch_size!r}", "use e.g. 8 or auto")
    elif not _on_cuda_only(model) or not prompts:
        if batch_size == "auto":
            logger.warning("--batch_size auto sizes batches by free GPU memory; this model is not (all) on a GPU, so it uses %d", DEFAULT_BATCH_SIZE)
        size = DEFAULT_BATCH_SIZE
    else:
        longest = max(len(ids) for ids in encode_prompts(tokenizer, prompts, max_length, chat_template))
        _run_caches.pop(model, None)  # an earlier run's cache would make the free memory look smaller
        limit = min(AUTO_BATCH_LIMIT, len(prompts))
        size = largest_batch(model, limit=limit, prompt_length=longest, cache_length=longest + max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        logger.info("--batch_size auto: %d sequences of up to %d + %d tokens per batch", size, longest, max_new_tokens)
    return GenerationSettings(max_new_tokens, size, max_length, chat_template, compiled)
