"""MMLU-Pro accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/mmlu_pro_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/mmlu_pro_results.json

Variant: --categories math,physics --max_samples 500. Data: TIGER-Lab/MMLU-Pro from the hub;
offline, --dataset_path a local copy (json/jsonl/parquet/csv with question, options, answer, category).
"""


from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import mmlu_pro


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, mmlu_pro.DEFAULTS)
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--categories", default=None, help="comma-separated categories, case-insensitive, e.g. math,law (default: all)")
    args = parse_arguments(parser)
    categories = [part for part in args.categories.split(",") if part.strip()] if args.categories else None
    with EvaluatorRun(args, mmlu_pro.DEFAULTS) as evaluator:
        samples = subsample(mmlu_pro.load_samples(args.dataset_path, args.split, categories), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or mmlu_pro.HUB,
            "split": args.split,
            "num_questions": len(samples),
            "categories": sorted({sample["category"] for sample in samples}),
        }
        task = mmlu_pro.task()
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, selection={"split": args.split, "categories": categories},
        )


if __name__ == "__main__":
    run(main)
