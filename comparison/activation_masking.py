"""Activation-magnitude (AM) baseline: rank (site, position, channel) by |activation| in one clean pass.

    python comparison/activation_masking.py --model_path models/smollm2-135m \
        --input_text "Later reviews were more positive. ..." \
        --output_file neurons/activation_ranked_neurons.json

Variant: the reference's ranking (signed activation, descending: large negative values rank last):
    ... --signed
The file has the stage-1 format, so stage 2 and every evaluator accept it.
"""

import logging
import time

from critical_neurons.baselines import ACTIVATION_THRESHOLD, activation_ranking
from critical_neurons.cli import ArgumentParser, add_model_arguments, add_ranking_arguments, encode_text, parse_arguments, run
from critical_neurons.identity import model_identity
from critical_neurons.io import OutputFile, run_metadata
from critical_neurons.models import load_model, max_positions, model_info
from critical_neurons.ranking import log_ranking, ranking_file

logger = logging.getLogger("activation_masking")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_ranking_arguments(parser, "neurons/activation_ranked_neurons.json")
    parser.add_argument("--signed", action="store_true", help="rank by the signed activation, as the reference did (default: magnitude)")
    args = parse_arguments(parser)
    started = time.time()
    with OutputFile(args.output_file) as output:
        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        input_ids = encode_text(tokenizer, args.input_text, "--input_text", max_positions=max_positions(model))
        compute_started = time.time()
        ranking = activation_ranking(model, input_ids, top_n=args.top_n, modules=args.modules, signed=args.signed)
        compute_s = round(time.time() - compute_started, 3)
        log_ranking(ranking, "activation value")
        output.write_json(
            ranking_file(
                ranking,
                method="multi_gpu_activation_value_analysis",
                input_text=args.input_text,
                noise_scale=None,
                num_samples=1,
                num_tokens=int(input_ids.shape[1]),
                model=model_identity(model, args.model_path),
                model_info=model_info(model, args.model_path),
                metadata=run_metadata(vars(args), started, compute_s=compute_s),
                score="signed_activation" if args.signed else "abs_activation",
                score_threshold=ACTIVATION_THRESHOLD,
            ),
        )
        logger.info("Wrote %s", output.given)


if __name__ == "__main__":
    run(main)
