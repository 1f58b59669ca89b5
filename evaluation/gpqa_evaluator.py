"""GPQA-Diamond accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/gpqa_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/gpqa_results.json

Variant: --sample_size 50. Data: Idavidrein/gpqa (gpqa_diamond, gated: log in with
`hf auth login` after accepting its terms on the hub); offline, --dataset_path gpqa_diamond.csv.
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import gpqa

SUMMARY_COLUMNS = ["overall_accuracy", "strict_accuracy", "total_questions", "extraction_rate", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/gpqa_results.json", max_length=2048, max_new_tokens=50)
    parser.add_argument("--subset_name", default=gpqa.CONFIG, help="hub config (the reference uses the 198-question diamond set)")
    parser.add_argument("--split", default="train", choices=["train", "test"], help="the hub has only train")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    samples = subsample(gpqa.load_samples(args.dataset_path, args.split, args.subset_name), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or f"{gpqa.HUB}/{args.subset_name}",
        "split": args.split,
        "num_questions": len(samples),
        "max_length": args.max_length,
        "subjects": sorted({sample["subject"] for sample in samples}),
    }
    settings = {"max_new_tokens": args.max_new_tokens, "chat_template": args.chat_template}
    runner = LevelRunner(model, args, dataset_info, settings=settings, summary_columns=SUMMARY_COLUMNS)
    task = gpqa.task()
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
