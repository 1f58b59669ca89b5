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

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_ranking_arguments, parse_arguments, run
from critical_neurons.method.baselines import GRADIENT_THRESHOLD, GRAPHS, gradient_ranking
from critical_neurons.method.ranking_cli import write_ranking
from critical_neurons.model.perplexity import LN10, exp_or_inf

logger = logging.getLogger("gradient_masking")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_ranking_arguments(parser, "neurons/gradient_ranked_neurons.json")
    parser.set_defaults(dtype="float32")
    parser.add_argument("--signed", action="store_true", help="rank by the signed gradient, as the reference did (default: magnitude)")
    parser.add_argument("--graph", choices=GRAPHS, default="intact", help="cut: the reference's hook (each site output replaced by a detached clone)")
    args = parse_arguments(parser)

    def rank(model, input_ids):
        ranking, loss = gradient_ranking(model, input_ids, top_n=args.top_n, modules=args.modules, signed=args.signed, graph=args.graph)
        logger.info("Loss %.4f, perplexity %.4g", loss, exp_or_inf(loss))
        extra = {"loss": loss, "perplexity": exp_or_inf(loss), "log10_perplexity": loss / LN10}
        return ranking, {**extra, "score": "signed_gradient" if args.signed else "abs_gradient", "graph": args.graph, "score_threshold": GRADIENT_THRESHOLD}

    write_ranking(args, rank, method="multi_gpu_gradient_based_analysis", score_name="gradient value")


if __name__ == "__main__":
    run(main)
