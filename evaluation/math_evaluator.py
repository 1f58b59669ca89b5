"""MATH-500 accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/math_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/math500_results.json

Data: HuggingFaceH4/MATH-500 (test) from the hub; offline, --dataset_path a local file or folder in
the same schema (problem, answer; subject, level, unique_id when present). The answer is the last
\\boxed{...}; equivalence is math-verify's, in a worker process killed when a comparison overruns.
"""

import argparse
from importlib.metadata import version

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import math as math500

SUMMARY_COLUMNS = ["accuracy", "correct_count", "boxed_rate", "answer_extraction_rate", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/math500_results.json", max_length=2048, max_new_tokens=512)
    parser.add_argument("--split", default="test", help="dataset split (MATH-500 has only test)")
    parser.add_argument("--verify_timeout", type=int, default=5, help="seconds per math-verify parse or comparison (its default); the worker is killed after 3x+2")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    samples = subsample(math500.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or math500.HUB,
        "split": args.split,
        "num_samples": len(samples),
        "max_length": args.max_length,
        "max_new_tokens": args.max_new_tokens,
        "chat_template": args.chat_template,
        "evaluation_method": f"last \\boxed{{}} (fallbacks: 'the answer is', last number) + math-verify {version('math-verify')}",
    }
    runner = LevelRunner(model, args, dataset_info, settings={"verify_timeout": args.verify_timeout}, summary_columns=SUMMARY_COLUMNS)
    with math500.BoundedVerifier(args.verify_timeout) as verifier:
        task = math500.task(verifier)
        runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
