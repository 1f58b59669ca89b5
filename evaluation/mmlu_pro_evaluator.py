"""MMLU-Pro accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/mmlu_pro_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/mmlu_pro_results.json

Variant: --categories math,physics --max_samples 500. Data: TIGER-Lab/MMLU-Pro from the hub;
offline, --dataset_path a local copy (json/jsonl/parquet/csv with question, options, answer, category).
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import mmlu_pro

SUMMARY_COLUMNS = ["overall_accuracy", "total_correct", "total_questions", "extraction_rate", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/mmlu_pro_results.json", max_length=2048, max_new_tokens=50)
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--categories", default=None, help="comma-separated categories, case-insensitive, e.g. math,law (default: all)")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    categories = [part for part in args.categories.split(",") if part.strip()] if args.categories else None
    samples = subsample(mmlu_pro.load_samples(args.dataset_path, args.split, categories), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or mmlu_pro.HUB,
        "split": args.split,
        "num_questions": len(samples),
        "max_length": args.max_length,
        "categories": sorted({sample["category"] for sample in samples}),
    }
    settings = {"max_new_tokens": args.max_new_tokens, "chat_template": args.chat_template}
    runner = LevelRunner(model, args, dataset_info, settings=settings, summary_columns=SUMMARY_COLUMNS)
    task = mmlu_pro.task()
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
