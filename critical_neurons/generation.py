"""Batched greedy generation with left padding; masks apply at every generated token."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.perplexity import pad_batch


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


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    max_input_length: int = 2048,
    chat_template: bool = False,
    progress: bool = True,
    desc: str = "Generating",
) -> list[str]:
    """Greedy continuations (generated part only, special tokens dropped), in prompt order.

    Prompts run longest first so each left-padded batch holds similar lengths.
    """
    encoded = encode_prompts(tokenizer, prompts, max_input_length, chat_template)
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]), reverse=True)
    device = model.get_input_embeddings().weight.device
    outputs: list[str] = [""] * len(encoded)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        batch = order[start : start + batch_size]
        input_ids, attention_mask = pad_batch([encoded[index] for index in batch], tokenizer.pad_token_id, left=True)
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, input_ids.shape[1] :], skip_special_tokens=True)
        for index, text in zip(batch, texts):
            outputs[index] = text
    return outputs
