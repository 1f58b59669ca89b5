"""MATH-500 accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/math_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/math500_results.json

Data: HuggingFaceH4/MATH-500 (test) from the hub; offline, --dataset_path a local file or folder in
the same schema (problem, answer; subject, level, unique_id when present). The answer is the last
\\boxed{...}; equivalence is math-verify's, in a worker process killed when a comparison overruns.
"""

from importlib.metadata import version

from critical_neurons.cli import ArgumentParser, integer, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import math500


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, math500.DEFAULTS)
    parser.add_argument("--split", default="test", help="dataset split (MATH-500 has only test)")
    parser.add_argument("--verify_timeout", type=integer(1), default=5, help="seconds per math-verify parse or comparison (its default); the worker is killed after 3x+2")
    args = parse_arguments(parser)
    with EvaluatorRun(args, math500.DEFAULTS) as evaluator:
        samples = subsample(math500.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or math500.HUB,
            "split": args.split,
            "num_samples": len(samples),
            "evaluation_method": f"last \\boxed{{}} (fallbacks: 'the answer is', last number) + math-verify {version('math-verify')}",
        }
        with math500.BoundedVerifier(args.verify_timeout) as verifier:
            task = math500.task(verifier)
            evaluator.run_generative(
                task,
                samples=samples, dataset_info=dataset_info, selection={"split": args.split}, settings={"verify_timeout": args.verify_timeout},
            )


if __name__ == "__main__":
    run(main)
