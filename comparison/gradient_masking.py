"""Gradient-magnitude (GM) baseline: rank (site, position, channel) by |d loss / d output| on the input text.

    python comparison/gradient_masking.py --model_path models/smollm2-135m \
        --input_text "Later reviews were more positive. ..." \
        --output_file neurons/gradient_ranked_neurons.json

Variant: the reference's ordering (signed gradient, descending), still with the graph intact:
    ... --signed
Variant: the reference's ranking itself (its hook replaced every site output by a detached clone,
so only o_proj/down_proj get a gradient, the same map in every layer):
    ... --signed --graph cut
Loss: mean next-token cross-entropy of the text (labels = input ids), model in eval mode (the
reference used train mode, which changes nothing for models without dropout). By default no hook
detaches the outputs, so every site gets its own gradient.
"""

import logging
import time

from critical_neurons.baselines import GRADIENT_THRESHOLD, GRAPHS, gradient_ranking
from critical_neurons.cli import ArgumentParser, add_model_arguments, add_ranking_arguments, encode_text, parse_arguments, run
from critical_neurons.identity import model_identity
from critical_neurons.io import OutputFile, run_metadata
from critical_neurons.models import load_model, max_positions, model_info
from critical_neurons.perplexity import LN10, exp_or_inf
from critical_neurons.ranking import log_ranking, ranking_file

logger = logging.getLogger("gradient_masking")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_ranking_arguments(parser, "neurons/gradient_ranked_neurons.json")
    parser.set_defaults(dtype="float32")
    parser.add_argument("--signed", action="store_true", help="rank by the signed gradient, as the reference did (default: magnitude)")
    parser.add_argument("--graph", choices=GRAPHS, default="intact", help="cut: the reference's hook (each site output replaced by a detached clone)")
    args = parse_arguments(parser)
    started = time.time()
    with OutputFile(args.output_file) as output:
        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        input_ids = encode_text(tokenizer, args.input_text, "--input_text", max_positions=max_positions(model))
        compute_started = time.time()
        ranking, loss = gradient_ranking(model, input_ids, top_n=args.top_n, modules=args.modules, signed=args.signed, graph=args.graph)
        compute_s = round(time.time() - compute_started, 3)
        logger.info("Loss %.4f, perplexity %.4g", loss, exp_or_inf(loss))
        log_ranking(ranking, "gradient value")
        output.write_json(
            ranking_file(
                ranking,
                method="multi_gpu_gradient_based_analysis",
                input_text=args.input_text,
                noise_scale=None,
                num_samples=1,
                num_tokens=int(input_ids.shape[1]),
                model=model_identity(model, args.model_path),
                model_info=model_info(model, args.model_path),
                metadata=run_metadata(vars(args), started, compute_s=compute_s),
                loss=loss,
                perplexity=exp_or_inf(loss),
                log10_perplexity=loss / LN10,
                score="signed_gradient" if args.signed else "abs_gradient",
                graph=args.graph,
                score_threshold=GRADIENT_THRESHOLD,
            ),
        )
        logger.info("Wrote %s", output.given)


if __name__ == "__main__":
    run(main)
