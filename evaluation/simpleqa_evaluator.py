"""SimpleQA lexical scores with the top-N records of a neuron file masked, at each masking level.

    python evaluation/simpleqa_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/simpleqa_results.json

Variant: --template_idx 3 --sample_size 500. Data: basicv8vc/SimpleQA from the hub; offline,
--dataset_path simple_qa_test_set.csv (or json/jsonl/parquet with problem and answer).
No LLM grader offline: normalised exact match, gold-contained and token F1 only.
"""


from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import simpleqa


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, simpleqa.DEFAULTS)
    parser.add_argument("--template_idx", type=int, default=0, choices=range(len(simpleqa.TEMPLATES)), help="prompt template (0: the reference's default)")
    parser.add_argument("--split", default="test", help="the hub has only test")
    args = parse_arguments(parser)
    with EvaluatorRun(args, simpleqa.DEFAULTS) as evaluator:
        samples = subsample(simpleqa.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or simpleqa.HUB,
            "split": args.split,
            "num_questions": len(samples),
            "prompt_template": simpleqa.TEMPLATES[args.template_idx],
            "grading": simpleqa.GRADER_NOTE,
        }
        task = simpleqa.task(args.template_idx)
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, selection={"split": args.split}, settings={"template_idx": args.template_idx},
        )


if __name__ == "__main__":
    run(main)
