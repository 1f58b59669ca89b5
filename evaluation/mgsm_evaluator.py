"""MGSM accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/mgsm_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/mgsm_results.json

Variant: --languages en,es,fr,de,ru,zh,ja,th,sw,bn,te (the multilingual set; English alone is the
reference). Data: juletxara/mgsm, one hub config per language; offline, --dataset_path
data/mgsm_{lang}.jsonl ({lang} is replaced by each language).
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import mgsm

SUMMARY_COLUMNS = ["accuracy", "strict_accuracy", "total_samples", "prediction_rate", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/mgsm_results.json", max_length=2048, max_new_tokens=512)
    parser.add_argument("--languages", default="en", help=f"comma-separated MGSM languages ({','.join(mgsm.LANGUAGES)}); the reference is English only")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    languages = list(dict.fromkeys(part.strip() for part in args.languages.split(",") if part.strip()))
    samples = subsample(mgsm.load_samples(args.dataset_path, languages, args.split), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or mgsm.HUB,
        "split": args.split,
        "languages": languages,
        "num_samples": len(samples),
        "max_length": args.max_length,
    }
    settings = {"max_new_tokens": args.max_new_tokens, "chat_template": args.chat_template}
    runner = LevelRunner(model, args, dataset_info, settings=settings, summary_columns=SUMMARY_COLUMNS)
    task = mgsm.task()
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
