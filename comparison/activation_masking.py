"""Activation-magnitude (AM) baseline: rank (site, position, channel) by |activation| in one clean pass.

    python comparison/activation_masking.py --model_path models/smollm2-135m \
        --input_text "Later reviews were more positive. ..." \
        --output_file neurons/activation_ranked_neurons.json

Variant: the reference's ranking (signed activation, descending: large negative values rank last):
    ... --signed
The file has the stage-1 format, so stage 2 and every evaluator accept it.
"""

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_ranking_arguments, parse_arguments, run
from critical_neurons.method.baselines import ACTIVATION_THRESHOLD, activation_ranking
from critical_neurons.method.ranking_cli import write_ranking


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_ranking_arguments(parser, "neurons/activation_ranked_neurons.json")
    parser.add_argument("--signed", action="store_true", help="rank by the signed activation, as the reference did (default: magnitude)")
    args = parse_arguments(parser)

    def rank(model, input_ids):
        ranking = activation_ranking(model, input_ids, top_n=args.top_n, modules=args.modules, signed=args.signed)
        return ranking, {"score": "signed_activation" if args.signed else "abs_activation", "score_threshold": ACTIVATION_THRESHOLD}

    write_ranking(args, rank, method="multi_gpu_activation_value_analysis", score_name="activation value")


if __name__ == "__main__":
    run(main)
