"""C4 perplexity with the top-N records of a neuron file masked, at each masking level.

    python evaluation/c4_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --max_samples 300000 --output_file results/c4_results.json

Data: --dataset_path a local C4 JSON-lines file (``.json``/``.jsonl``, gzipped or not), as the
reference; without it, the first validation shard of allenai/c4 (en) from the hub.
"""

from critical_neurons.cli import ArgumentParser, integer, parse_arguments, run
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks.language_modeling import C4, C4_HUB, C4_HUB_FILE, c4_texts
from critical_neurons.model.perplexity import perplexity


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, C4)
    parser.add_argument("--min_text_length", type=integer(0), default=50, help="characters; shorter texts are skipped (reference: 50)")
    args = parse_arguments(parser)
    with EvaluatorRun(args, C4) as evaluator:
        texts = c4_texts(args.dataset_path, args.min_text_length)[: args.max_samples]
        model, tokenizer = evaluator.load_model()
        evaluator.run(
            lambda: perplexity(model, tokenizer, texts, max_length=args.max_length, batch_size=args.batch_size).to_dict(),
            samples=texts, dataset_info={"source": args.dataset_path or f"{C4_HUB}/{C4_HUB_FILE}", "dataset_type": "C4", "num_texts": len(texts)}, selection={"min_text_length": args.min_text_length},
        )


if __name__ == "__main__":
    run(main)
