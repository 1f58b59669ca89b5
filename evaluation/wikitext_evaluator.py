"""WikiText-103 perplexity with the top-N records of a neuron file masked, at each masking level.

    python evaluation/wikitext_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --max_samples 1801350 --output_file results/wikitext_results.json

Offline: --dataset_path a local wiki.test.tokens file, or a json/jsonl/parquet/csv file with a ``text`` field.
"""

from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks.language_modeling import WIKITEXT, WIKITEXT_HUB, wikitext_texts
from critical_neurons.model.perplexity import perplexity


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, WIKITEXT)
    parser.add_argument("--subset_name", default="wikitext-103-v1", help="hub config (the reference uses the tokenised v1)")
    parser.add_argument("--split", default="test", choices=["test", "train", "validation"])
    args = parse_arguments(parser)
    with EvaluatorRun(args, WIKITEXT) as evaluator:
        texts = wikitext_texts(args.dataset_path, args.subset_name, args.split)[: args.max_samples]
        model, tokenizer = evaluator.load_model()
        evaluator.run(
            lambda: perplexity(model, tokenizer, texts, max_length=args.max_length, batch_size=args.batch_size).to_dict(),
            samples=texts, dataset_info={"source": args.dataset_path or f"{WIKITEXT_HUB}/{args.subset_name}", "split": args.split, "num_texts": len(texts)}, selection={"subset_name": args.subset_name, "split": args.split},
        )


if __name__ == "__main__":
    run(main)
