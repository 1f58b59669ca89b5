"""What every script shares: common flags, logging, text tokenisation and the error wrapper."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import torch
from transformers import PreTrainedTokenizerBase

from critical_neurons.errors import UsageError
from critical_neurons.model.loading import DTYPE_CHOICES

logger = logging.getLogger("critical_neurons")

MIN_INPUT_TOKENS = 10


SEED_MAX = 2**32 - 1  # numpy and torch accept seeds in [0, 2**32)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error form: one line naming the flag and the fix, exit status 2."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see --help", file=sys.stderr)
        sys.exit(2)


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def number(minimum: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """argparse type: a finite float >= minimum (> minimum when not ``inclusive``); NaN and inf are refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum or (not inclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'greater than'} {minimum:g}, got {value:g}")
        return value

    return parse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_path", required=True, help="HF model folder, hub id, or .gguf file")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="auto: float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--device_map", default=None, help='"auto" spreads the model over all GPUs (accelerate); "cpu", "cuda:N"; default: one device')
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the model folder")
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=42, help="the reference's seed")
    parser.add_argument("--log_file", default=None, help="also append the log to this file")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def add_neuron_file_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--neuron_file", required=required, default=None, help="ranking file (stage 1, AM, GM) or stage-2 result")
    parser.add_argument("--allow_other_model", action="store_true", help="use a neuron file made for another model (refused by default)")


def add_ranking_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    """Flags every ranking script (Stage 1, AM, GM) shares besides the model flags."""
    parser.add_argument("--input_text", required=True, help="text the ranking is computed on (at least 10 tokens)")
    parser.add_argument("--top_n", type=integer(1), default=10_000, help="records written (the reference keeps 10,000)")
    parser.add_argument("--modules", default=None, help="regex of site names replacing the default rule; prefix '+' to add to it")
    parser.add_argument("--output_file", default=default_output)


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file))
        except OSError as error:
            raise UsageError("--log_file", f"cannot append to {log_file} ({error.strerror})", "choose a writable file or drop --log_file") from None
    logging.basicConfig(level=level, format="%(asctime)s - %(levelname)s - %(message)s", handlers=handlers, force=True)


def check_log_file(args: argparse.Namespace) -> None:
    """Refuse a ``--log_file`` that is another file of the run: logging would append to an input or an output.

    Compared with every flag naming an existing file and every ``*_file``/``*_path`` flag (outputs may not exist yet).
    """
    if not args.log_file:
        return
    log = os.path.realpath(os.path.expanduser(args.log_file))
    for name, value in vars(args).items():
        if name == "log_file" or not isinstance(value, str) or not value:
            continue
        path = os.path.realpath(os.path.expanduser(value))
        if path == log and (name.endswith(("_file", "_path")) or os.path.isfile(path)):
            raise UsageError("--log_file", f"{args.log_file} is also the run's --{name}, which the log would append to", "choose another log file")


def parse_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the flags and start logging (an unwritable ``--log_file``, or one that is another file of the run, is a usage error)."""
    args = parser.parse_args()
    check_log_file(args)
    setup_logging(args.log_level, args.log_file)
    return args


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
