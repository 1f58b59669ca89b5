"""C4 perplexity with the top-N records of a neuron file masked, at each masking level.

    python evaluation/c4_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --max_samples 300000 --output_file results/c4_results.json

Data: --dataset_path a local C4 JSON-lines file (``.json``/``.jsonl``, gzipped or not), as the
reference; without it, the first validation shard of allenai/c4 (en) from the hub.
"""

import argparse

from critical_neurons.cli import run, setup_logging
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.perplexity import perplexity
from critical_neurons.tasks.language_modeling import C4_HUB, C4_HUB_FILE, c4_texts

PERPLEXITY_COLUMNS = ["perplexity", "log10_perplexity", "avg_loss", "total_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/c4_results.json", max_length=512)
    parser.add_argument("--min_text_length", type=int, default=50, help="characters; shorter texts are skipped (reference: 50)")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    texts = c4_texts(args.dataset_path, args.min_text_length)[: args.max_samples]
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {"source": args.dataset_path or f"{C4_HUB}/{C4_HUB_FILE}", "dataset_type": "C4", "num_texts": len(texts), "max_length": args.max_length}
    runner = LevelRunner(model, args, dataset_info, settings={"min_text_length": args.min_text_length}, summary_columns=PERPLEXITY_COLUMNS)
    runner.run(lambda: perplexity(model, tokenizer, texts, max_length=args.max_length, batch_size=args.batch_size).to_dict())


if __name__ == "__main__":
    run(main)
