"""Random baseline: WikiText perplexity with N randomly chosen distinct channels masked, over several draws.

    python comparison/random_masking.py --model_path models/smollm2-135m --max_samples 1000 \
        --masking_levels "100,200,300,400,500,600,700,800,900,1000" --num_runs 10 \
        --output_file results/random_masking_results.json

Variant: the reference's population (every nn.Linear output channel, lm_head included), offline data:
    ... --population reference --dataset_path tests/fixtures/wikitext_test.jsonl
Draw r of level N is seeded by (seed, N, r) alone; level 0 masks nothing and runs once.
"""

import argparse
import logging
import time

import torch

from critical_neurons.baselines import random_masking, reference_population, site_population
from critical_neurons.cli import add_model_arguments, run, setup_logging
from critical_neurons.errors import UsageError
from critical_neurons.evaluation import parse_levels
from critical_neurons.io import check_output_path, run_metadata, write_json
from critical_neurons.models import load_model, model_info
from critical_neurons.perplexity import tokenize_texts
from critical_neurons.tasks.language_modeling import WIKITEXT_HUB, wikitext_texts

logger = logging.getLogger("random_masking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--dataset_path", default=None, help="hub id, local wiki.test.tokens file, or json/jsonl/parquet/csv file with a text field")
    parser.add_argument("--subset_name", default="wikitext-103-v1", help="hub config (the reference uses the tokenised v1)")
    parser.add_argument("--split", default="test", choices=["test", "train", "validation"])
    parser.add_argument("--max_samples", type=int, default=1000, help="first N texts of more than 50 characters (reference: 1000)")
    parser.add_argument("--max_length", type=int, default=512, help="tokens kept per text (reference: 512)")
    parser.add_argument("--batch_size", type=int, default=8, help="texts per forward pass; does not change the perplexity")
    parser.add_argument("--masking_levels", default="0,10,100,1000", help="comma-separated channel counts (reference default)")
    parser.add_argument("--num_runs", type=int, default=10, help="random draws per level above 0 (reference: 10)")
    parser.add_argument("--population", choices=["sites", "reference"], default="sites", help="sites: stage 1's channels; reference: all nn.Linear outputs incl. lm_head")
    parser.add_argument("--modules", default=None, help="with --population sites: regex of site names, as stage 1")
    parser.add_argument("--output_file", default="results/random_masking_results.json")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    started = time.time()
    output = check_output_path(args.output_file)
    levels = parse_levels(args.masking_levels)
    if args.seed < 0:
        raise UsageError("--seed", f"must be non-negative, got {args.seed}", "use e.g. 42")
    if args.modules and args.population == "reference":
        raise UsageError("--modules", "only applies to --population sites", "drop --modules or use --population sites")
    if args.max_samples < 1:
        raise UsageError("--max_samples", f"must be at least 1, got {args.max_samples}", "use e.g. 1000")
    texts = wikitext_texts(args.dataset_path, args.subset_name, args.split)[: args.max_samples]

    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    sequences = tokenize_texts(tokenizer, texts, args.max_length)
    if not sequences:
        raise UsageError("--dataset_path", "no text gives at least 2 tokens", "pass a dataset with longer texts")
    if args.population == "reference":
        population = reference_population(model)
    else:
        population = site_population(model, torch.tensor([sequences[0][:16]]), args.modules)
    logger.info("Population: %d channels in %d modules (%s)", population.size, len(population.sites), population.kind)

    header = {
        "model_info": {**model_info(model, args.model_path), "total_neurons": population.size, "population": population.kind, "population_modules": len(population.sites)},
        "dataset_info": {"source": args.dataset_path or f"{WIKITEXT_HUB}/{args.subset_name}", "split": args.split, "num_texts": len(texts), "max_length": args.max_length, "batch_size": args.batch_size},
        "experiment_info": {"masking_levels": levels, "num_runs": args.num_runs, "base_seed": args.seed, "population": population.kind, "seeding": "numpy default_rng([seed, level, run])"},
    }
    results = []

    def write_level(entry: dict) -> None:
        results.append(entry)
        write_json(output, {**header, "results": results, "metadata": run_metadata(vars(args), started)})

    random_masking(
        model, tokenizer, texts, population, levels,
        num_runs=args.num_runs, seed=args.seed, max_length=args.max_length, batch_size=args.batch_size, on_level=write_level,
    )
    print("Results summary")
    for entry in results:
        print(f"Masked {entry['masking_level']} neurons: {entry['mean_perplexity']:.4g} ± {entry['std_perplexity']:.4g} (log10 of mean {entry['log10_mean_perplexity']:.3f}, {entry['num_runs']} runs)")
    logger.info("Wrote %s", output)


if __name__ == "__main__":
    run(main)
