"""What every script shares: common flags, logging, text tokenisation and the error wrapper."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import torch
from transformers import PreTrainedTokenizerBase

from critical_neurons.errors import UsageError
from critical_neurons.models import DTYPE_CHOICES

logger = logging.getLogger("critical_neurons")

BOOKENDS_TEXT = (
    "Later reviews were more positive. In just over 29 minutes, Bookends is stunning in its vision of a "
    "bewildered America in search of itself, said AllMusic writer Thom Jurek, who gave it five stars out of "
    "five. Pitchfork Media's Stephen M. Deusner called Bookends the moment in which the duo were settling "
    "into themselves, losing their folk revival pretensions and emphasizing quirky production techniques to "
    "match their soaring vocals. The A.V. Club called it the group's most musically and conceptually daring album."
)
MIN_INPUT_TOKENS = 10


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_path", required=True, help="HF model folder, hub id, or .gguf file")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="auto: float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--device_map", default=None, help='"auto" spreads the model over all GPUs (accelerate); default: one device')
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the model folder")
    parser.add_argument("--seed", type=int, default=42, help="the reference's seed")
    parser.add_argument("--log_file", default=None, help="also append the log to this file")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def add_ranking_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    """Flags every ranking script (Stage 1, AM, GM) shares besides the model flags."""
    parser.add_argument("--input_text", required=True, help="text the ranking is computed on (at least 10 tokens)")
    parser.add_argument("--top_n", type=int, default=10_000, help="records written (the reference keeps 10,000)")
    parser.add_argument("--modules", default=None, help="regex of site names replacing the default rule; prefix '+' to add to it")
    parser.add_argument("--output_file", default=default_output)


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level, format="%(asctime)s - %(levelname)s - %(message)s", handlers=handlers, force=True)


def encode_text(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    flag: str,
    *,
    min_tokens: int = MIN_INPUT_TOKENS,
    max_length: int | None = None,
    max_positions: int | None = None,
) -> torch.Tensor:
    """(1, seq) token ids with the tokenizer's special tokens, cut to ``max_length`` if given.

    Texts under ``min_tokens`` are refused, and so are texts longer than the model's
    ``max_positions`` (they would fail inside the model with an index error).
    """
    ids = tokenizer(text, add_special_tokens=True, truncation=max_length is not None, max_length=max_length, return_tensors="pt").input_ids
    if ids.shape[1] < min_tokens:
        raise UsageError(flag, f"the text gives {ids.shape[1]} tokens, fewer than the {min_tokens} required", "pass a longer text")
    if max_positions is not None and ids.shape[1] > max_positions:
        raise UsageError(flag, f"the text gives {ids.shape[1]} tokens, more than the model's {max_positions} positions", "pass a shorter text")
    return ids


def run(main: Callable[[], None]) -> None:
    """Run a script's main: bad input becomes one line on stderr and exit status 2."""
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; files already written are complete", file=sys.stderr)
        sys.exit(130)
