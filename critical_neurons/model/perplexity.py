"""Perplexity, in log space, for stage 2, WikiText, C4 and random masking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

LN10 = math.log(10.0)


def exp_or_inf(log_value: float) -> float:
    """exp that returns inf instead of raising (math.exp overflows above ~709)."""
    try:
        return math.exp(log_value)
    except OverflowError:
        return math.inf


@torch.no_grad()
def sequence_nll(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy and predicted-token count per batch row (float64, int64, on CPU).

    Padding (attention_mask 0) is excluded from the loss; cross-entropy is taken in float32 one row
    at a time so a half-precision model never holds a float32 copy of the whole batch's logits.
    """
    device = model.get_input_embeddings().weight.device
    input_ids = input_ids.to(device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = attention_mask.to(device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    targets = input_ids[:, 1:]
    predicted = attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
    totals = []
    for row_logits, row_targets, row_mask in zip(logits[:, :-1], targets, predicted):
        losses = F.cross_entropy(row_logits.float(), row_targets.to(row_logits.device), reduction="none")
        totals.append(losses[row_mask.to(losses.device)].double().sum().cpu())
    return torch.stack(totals), predicted.sum(dim=1).cpu()


@dataclass
class PerplexityResult:
    """Dataset perplexity = exp(total CE / total predicted tokens); log10 kept beside it for overflow.

    ``reference_*`` is the authors' figure from the same losses: each text's mean loss weighted by
    its L tokens (the unpredicted first one included) instead of its L-1 predicted ones, i.e.
    exp(sum(mean_loss_i * L_i) / sum(L_i)).
    """

    perplexity: float
    avg_loss: float
    log10_perplexity: float
    total_tokens: int
    valid_samples: int
    non_finite_samples: int
    reference_perplexity: float
    reference_avg_loss: float
    reference_log10_perplexity: float

    @classmethod
    def from_totals(cls, total_nll: float, total_tokens: int, valid_samples: int, non_finite_samples: int, reference_weighted_loss: float) -> PerplexityResult:
        """From the summed CE over predicted tokens and the authors' sum of mean_loss_i * L_i (sum L_i = tokens + texts)."""
        avg_loss = total_nll / total_tokens if total_tokens else math.nan
        reference_tokens = total_tokens + valid_samples
        reference_loss = reference_weighted_loss / reference_tokens if reference_tokens else math.nan
        return cls(
            exp_or_inf(avg_loss), avg_loss, avg_loss / LN10, total_tokens, valid_samples, non_finite_samples,
            exp_or_inf(reference_loss), reference_loss, reference_loss / LN10,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens on, truncated to ``max_length``); texts under 2 tokens dropped."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return [ids for ids in encoded if len(ids) >= 2]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, longest) ids and attention mask, padded on the right (scoring) or left (generation)."""
    longest = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, ids in enumerate(sequences):
        span = slice(longest - len(ids), longest) if left else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int = 512,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "Perplexity",
) -> PerplexityResult:
    """Perplexity of a text collection: each text truncated to ``max_length`` tokens, scored in padded batches.

    Texts run longest first so each batch holds similar lengths; the result does not depend on the
    batch size beyond float rounding. Rows with a non-finite loss are counted and make the total NaN.
    """
    sequences = sorted(tokenize_texts(tokenizer, texts, max_length), key=len, reverse=True)
    total_nll, total_tokens, non_finite, reference_weighted = 0.0, 0, 0, 0.0
    for start in tqdm(range(0, len(sequences), batch_size), desc=desc, disable=not progress):
        input_ids, attention_mask = pad_batch(sequences[start : start + batch_size], tokenizer.pad_token_id)
        nll, counts = sequence_nll(model, input_ids, attention_mask)
        non_finite += int((~torch.isfinite(nll)).sum())
        total_nll += float(nll.sum())
        total_tokens += int(counts.sum())
        reference_weighted += float((nll / counts * (counts + 1)).sum())  # mean loss of each text times its L = L-1 + 1 tokens
    return PerplexityResult.from_totals(total_nll, total_tokens, len(sequences), non_finite, reference_weighted)
