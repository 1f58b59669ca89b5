"""What the three ranking scripts (Stage 1, AM, GM) share after their flags: the steps to a ranking file.

Each script supplies only how to rank a loaded model on the input ids; this module checks and locks
the output, loads the model, times the ranking and writes the file with its identity.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel

from critical_neurons.cli import encode_text
from critical_neurons.method.ranking import Ranking, log_ranking
from critical_neurons.model.loading import load_model, max_positions, model_info
from critical_neurons.outputs.files import OutputFile, run_metadata
from critical_neurons.outputs.formats.build import ranking_payload
from critical_neurons.outputs.run_identity import model_identity

logger = logging.getLogger(__name__)


def write_ranking(
    args: argparse.Namespace,
    rank: Callable[[PreTrainedModel, torch.Tensor], tuple[Ranking, dict[str, Any]]],
    *,
    method: str,
    score_name: str,
    noise_scale: float | None = None,
    num_samples: int = 1,
) -> None:
    """Rank with ``rank(model, input_ids) -> (ranking, extra keys)`` and write ``--output_file``."""
    started = time.time()
    with OutputFile(args.output_file) as output:
        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        input_ids = encode_text(tokenizer, args.input_text, "--input_text", max_positions=max_positions(model))
        compute_started = time.time()
        ranking, extra = rank(model, input_ids)
        compute_s = round(time.time() - compute_started, 3)
        log_ranking(ranking, score_name)
        output.write_json(
            ranking_payload(
                ranking,
                method=method,
                input_text=args.input_text,
                noise_scale=noise_scale,
                num_samples=num_samples,
                num_tokens=int(input_ids.shape[1]),
                model=model_identity(model, args.model_path),
                model_info=model_info(model, args.model_path),
                metadata=run_metadata(vars(args), started, compute_s=compute_s),
                **extra,
            )
        )
        logger.info("Wrote %s", output.given)
