"""GPQA-Diamond accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/gpqa_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/gpqa_results.json

Variant: --sample_size 50. Data: Idavidrein/gpqa (gpqa_diamond, gated: log in with
`hf auth login` after accepting its terms on the hub); offline, --dataset_path gpqa_diamond.csv.
"""


from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import gpqa


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, gpqa.DEFAULTS)
    parser.add_argument("--subset_name", default=gpqa.CONFIG, help="hub config (the reference uses the 198-question diamond set)")
    parser.add_argument("--split", default="train", choices=["train", "test"], help="the hub has only train")
    args = parse_arguments(parser)
    with EvaluatorRun(args, gpqa.DEFAULTS) as evaluator:
        samples = subsample(gpqa.load_samples(args.dataset_path, args.split, args.subset_name), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or f"{gpqa.HUB}/{args.subset_name}",
            "split": args.split,
            "num_questions": len(samples),
            "subjects": sorted({sample["subject"] for sample in samples}),
        }
        task = gpqa.task()
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, selection={"split": args.split, "subset_name": args.subset_name},
        )


if __name__ == "__main__":
    run(main)
