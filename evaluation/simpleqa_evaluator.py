"""SimpleQA lexical scores with the top-N records of a neuron file masked, at each masking level.

    python evaluation/simpleqa_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/simpleqa_results.json

Variant: --template_idx 3 --sample_size 500. Data: basicv8vc/SimpleQA from the hub; offline,
--dataset_path simple_qa_test_set.csv (or json/jsonl/parquet with problem and answer).
No LLM grader offline: normalised exact match, gold-contained and token F1 only.
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import simpleqa

SUMMARY_COLUMNS = ["exact_match_rate", "gold_contained_rate", "token_f1", "answered_rate", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/simpleqa_results.json", max_length=1024, max_new_tokens=50)
    parser.add_argument("--template_idx", type=int, default=0, choices=range(len(simpleqa.TEMPLATES)), help="prompt template (0: the reference's default)")
    parser.add_argument("--split", default="test", help="the hub has only test")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    samples = subsample(simpleqa.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or simpleqa.HUB,
        "split": args.split,
        "num_questions": len(samples),
        "max_length": args.max_length,
        "template_used": args.template_idx,
        "prompt_template": simpleqa.TEMPLATES[args.template_idx],
        "grading": simpleqa.GRADER_NOTE,
    }
    settings = {"max_new_tokens": args.max_new_tokens, "chat_template": args.chat_template}
    runner = LevelRunner(model, args, dataset_info, settings=settings, summary_columns=SUMMARY_COLUMNS)
    task = simpleqa.task(args.template_idx)
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
