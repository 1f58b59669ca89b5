"""WikiText-103 perplexity with the top-N records of a neuron file masked, at each masking level.

    python evaluation/wikitext_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --max_samples 1801350 --output_file results/wikitext_results.json

Offline: --dataset_path a local wiki.test.tokens file, or a json/jsonl/parquet/csv file with a ``text`` field.
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.perplexity import perplexity
from critical_neurons.tasks.language_modeling import WIKITEXT_HUB, wikitext_texts

PERPLEXITY_COLUMNS = ["perplexity", "log10_perplexity", "avg_loss", "total_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/wikitext_results.json", max_length=512)
    parser.add_argument("--subset_name", default="wikitext-103-v1", help="hub config (the reference uses the tokenised v1)")
    parser.add_argument("--split", default="test", choices=["test", "train", "validation"])
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    texts = wikitext_texts(args.dataset_path, args.subset_name, args.split)[: args.max_samples]
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {"source": args.dataset_path or f"{WIKITEXT_HUB}/{args.subset_name}", "split": args.split, "num_texts": len(texts), "max_length": args.max_length}
    runner = LevelRunner(model, args, dataset_info, settings={}, summary_columns=PERPLEXITY_COLUMNS)
    runner.run(lambda: perplexity(model, tokenizer, texts, max_length=args.max_length, batch_size=args.batch_size).to_dict())


if __name__ == "__main__":
    run(main)
