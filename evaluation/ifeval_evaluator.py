"""IFEval instruction-following accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/ifeval_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/ifeval_results.json

Data: google/IFEval (train, 541 prompts) from the hub; offline, --dataset_path a local file or folder
in the same schema (key, prompt, instruction_id_list, kwargs). Scoring: the official checkers from
if-verifiable, strict and loose; without NLTK's punkt data, sentences are split by an untrained
Punkt tokenizer (recorded in dataset_info).
"""

from importlib.metadata import version

from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import ifeval


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, ifeval.DEFAULTS)
    parser.add_argument("--split", default="train", help="dataset split (google/IFEval has only train)")
    args = parse_arguments(parser)
    with EvaluatorRun(args, ifeval.DEFAULTS) as evaluator:
        samples = subsample(ifeval.load_samples(args.dataset_path, args.split), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or ifeval.HUB,
            "split": args.split,
            "num_samples": len(samples),
            "checkers": f"official IFEval checkers (if-verifiable {version('if-verifiable')})",
            "sentence_splitter": ifeval.sentence_splitter(),
        }
        task = ifeval.task()
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, selection={"split": args.split},
            settings={"sentence_splitter": dataset_info["sentence_splitter"]},
        )


if __name__ == "__main__":
    run(main)
