"""Random baseline: WikiText perplexity with N randomly chosen distinct channels masked, over several draws.

    python comparison/random_masking.py --model_path models/smollm2-135m --max_samples 1000 \
        --masking_levels "100,200,300,400,500,600,700,800,900,1000" --num_runs 10 \
        --output_file results/random_masking_results.json

Variant: the reference's population (every nn.Linear output channel, lm_head included), offline data:
    ... --population reference --dataset_path tests/fixtures/wikitext_test.jsonl
Draw r of level N is seeded by (seed, N, r) alone; level 0 masks nothing and runs once.
"""

import logging

import torch

from critical_neurons.cli import ArgumentParser, add_model_arguments, integer, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.evaluation.runner import LevelRunner, parse_levels
from critical_neurons.evaluation.tasks.language_modeling import WIKITEXT_HUB, wikitext_texts
from critical_neurons.method.baselines import MAX_RUNS, check_level, draw_channels, random_masking_level, reference_population, site_population
from critical_neurons.model.folding import MASK_MODES, plan_folds
from critical_neurons.model.loading import load_model, model_info
from critical_neurons.model.perplexity import tokenize_texts
from critical_neurons.outputs.files import OutputFile
from critical_neurons.outputs.formats import RANDOM_MASKING
from critical_neurons.outputs.formats.build import random_masking_header
from critical_neurons.outputs.formats.read import previous_levels
from critical_neurons.outputs.run_identity import data_digest, model_identity, run_key

logger = logging.getLogger("random_masking")
SUMMARY_COLUMNS = ("num_runs", "mean_perplexity", "std_perplexity", "log10_mean_perplexity", "min_perplexity", "max_perplexity")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--dataset_path", default=None, help="hub id, local wiki.test.tokens file, or json/jsonl/parquet/csv file with a text field")
    parser.add_argument("--subset_name", default="wikitext-103-v1", help="hub config (the reference uses the tokenised v1)")
    parser.add_argument("--split", default="test", choices=["test", "train", "validation"])
    parser.add_argument("--max_samples", type=integer(1), default=1000, help="first N texts of more than 50 characters (reference: 1000)")
    parser.add_argument("--max_length", type=integer(2), default=512, help="tokens kept per text (reference: 512)")
    parser.add_argument("--batch_size", type=integer(1), default=8, help="texts per forward pass; does not change the perplexity")
    parser.add_argument("--masking_levels", default="0,10,100,1000", help="comma-separated channel counts (reference default)")
    parser.add_argument("--num_runs", type=integer(1, MAX_RUNS), default=10, help=f"random draws per level above 0 (reference: 10; at most {MAX_RUNS})")
    parser.add_argument("--population", choices=["sites", "reference"], default="sites", help="sites: stage 1's channels; reference: all nn.Linear outputs incl. lm_head")
    parser.add_argument("--modules", default=None, help="with --population sites: regex of site names, as stage 1")
    parser.add_argument("--mask_mode", choices=MASK_MODES, default="auto", help="hook, fold (weights edited per draw, restored after) or auto (fold a draw when it folds)")
    parser.add_argument("--output_file", default="results/random_masking_results.json")
    args = parse_arguments(parser)
    levels = parse_levels(args.masking_levels)
    if args.modules and args.population == "reference":
        raise UsageError("--modules", "only applies to --population sites", "drop --modules or use --population sites")
    with OutputFile(args.output_file, inputs={"--dataset_path": args.dataset_path}) as output:
        previous_levels(output, RANDOM_MASKING)
        texts = wikitext_texts(args.dataset_path, args.subset_name, args.split)[: args.max_samples]
        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        sequences = tokenize_texts(tokenizer, texts, args.max_length)
        if not sequences:
            raise UsageError("--dataset_path", "no text gives at least 2 tokens", "pass a dataset with longer texts")
        if args.population == "reference":
            population = reference_population(model)
        else:
            population = site_population(model, torch.tensor([sequences[0][:16]]), args.modules)
        check_level(population, max(levels))  # before any level runs, so no partial output
        if args.mask_mode == "fold":  # every draw is known in advance: refuse an unfoldable one before level 0
            for level in levels:
                for draw in range(args.num_runs if level else 1):
                    plan_folds(model, draw_channels(population, level, args.seed, level, draw))
        logger.info("Population: %d channels in %d modules (%s)", population.size, len(population.sites), population.kind)
        identity = model_identity(model, args.model_path)
        info = {**model_info(model, args.model_path), "population_size": population.size, "population": population.kind, "population_modules": len(population.sites)}
        settings = {"num_runs": args.num_runs, "population": population.kind, "modules": args.modules, "max_length": args.max_length, "batch_size": args.batch_size}
        header = random_masking_header(
            population,
            model=identity,
            model_info=info,
            dataset_info={"source": args.dataset_path or f"{WIKITEXT_HUB}/{args.subset_name}", "split": args.split, "num_texts": len(texts)},
            settings=settings,
            levels=levels,
            num_runs=args.num_runs,
            seed=args.seed,
        )
        selection = {"max_samples": args.max_samples, "subset_name": args.subset_name, "split": args.split}
        key = run_key(identity, dtype=info["dtype"], records=None, data=data_digest(texts), seed=args.seed, selection=selection, settings=settings)
        runner = LevelRunner(output, header=header, run_key=key, levels=levels, summary_columns=SUMMARY_COLUMNS, arguments=vars(args))
        runner.run(
            lambda level: random_masking_level(
                model, tokenizer, texts, population, level, num_runs=args.num_runs, seed=args.seed, max_length=args.max_length,
                batch_size=args.batch_size, mask_mode=args.mask_mode,
            )
        )
        logger.info("Wrote %s", output.given)


if __name__ == "__main__":
    run(main)
