"""IFEval instruction-following accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/ifeval_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/ifeval_results.json

Data: google/IFEval (train, 541 prompts) from the hub; offline, --dataset_path a local file or folder
in the same schema (key, prompt, instruction_id_list, kwargs). Scoring: the official checkers from
if-verifiable, strict and loose; without NLTK's punkt data, sentences are split by an untrained
Punkt tokenizer (recorded in dataset_info).
"""

import argparse
from importlib.metadata import version

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import ifeval

SUMMARY_COLUMNS = ["strict_prompt_accuracy", "loose_prompt_accuracy", "strict_instruction_accuracy", "loose_instruction_accuracy", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/ifeval_results.json", max_length=2048, max_new_tokens=512)
    parser.add_argument("--split", default="train", help="dataset split (google/IFEval has only train)")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    samples = subsample(ifeval.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or ifeval.HUB,
        "split": args.split,
        "num_samples": len(samples),
        "max_length": args.max_length,
        "max_new_tokens": args.max_new_tokens,
        "chat_template": args.chat_template,
        "checkers": f"official IFEval checkers (if-verifiable {version('if-verifiable')})",
        "sentence_splitter": ifeval.sentence_splitter(),
    }
    runner = LevelRunner(model, args, dataset_info, settings={}, summary_columns=SUMMARY_COLUMNS)
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, ifeval.task(), args))


if __name__ == "__main__":
    run(main)
