"""Stage 1: rank neurons by how much their outputs move under input-embedding noise.

    python method/1_importance_evaluation.py --model_path models/smollm2-135m \
        --input_text "Later reviews were more positive. ..." --noise_scale 5 --num_samples 100 \
        --output_file neurons/importance_ranked_neurons.json

Variant: only MLP down projections, 16 noisy copies per forward pass, bfloat16 over all GPUs:
    ... --modules down_proj --batch_size 16 --dtype bfloat16 --device_map auto
"""

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_ranking_arguments, integer, number, parse_arguments, run
from critical_neurons.method.ranking_cli import write_ranking
from critical_neurons.method.stage1 import perturbation_importance


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_ranking_arguments(parser, "neurons/importance_ranked_neurons.json")
    parser.add_argument("--noise_scale", type=number(0), default=5.0, help="alpha: absolute std of the embedding noise (paper: 5)")
    parser.add_argument("--num_samples", type=integer(1), default=100, help="K: noisy passes averaged (paper: 100)")
    parser.add_argument("--batch_size", type=integer(1), default=8, help="noisy copies per forward pass; does not change the ranking")
    args = parse_arguments(parser)

    def rank(model, input_ids):
        ranking = perturbation_importance(
            model, input_ids, noise_scale=args.noise_scale, num_samples=args.num_samples, batch_size=args.batch_size, top_n=args.top_n, seed=args.seed, modules=args.modules
        )
        return ranking, {}

    write_ranking(args, rank, method="multi_gpu_activation_difference_analysis", score_name="activation diff", noise_scale=args.noise_scale, num_samples=args.num_samples)


if __name__ == "__main__":
    run(main)
