"""MGSM accuracy with the top-N records of a neuron file masked, at each masking level.

    python evaluation/mgsm_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/mgsm_results.json

Variant: --languages en,es,fr,de,ru,zh,ja,th,sw,bn,te (the multilingual set; English alone is the
reference). Data: juletxara/mgsm, one hub config per language; offline, --dataset_path
data/mgsm_{lang}.jsonl ({lang} is replaced by each language).
"""


from critical_neurons.cli import ArgumentParser, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import mgsm


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, mgsm.DEFAULTS)
    parser.add_argument("--languages", default="en", help=f"comma-separated MGSM languages ({','.join(mgsm.LANGUAGES)}); the reference is English only")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    args = parse_arguments(parser)
    languages = list(dict.fromkeys(part.strip() for part in args.languages.split(",") if part.strip()))
    with EvaluatorRun(args, mgsm.DEFAULTS) as evaluator:
        samples = subsample(mgsm.load_samples(args.dataset_path, languages, args.split), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {"source": args.dataset_path or mgsm.HUB, "split": args.split, "languages": languages, "num_samples": len(samples)}
        task = mgsm.task()
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, selection={"split": args.split, "languages": languages},
        )


if __name__ == "__main__":
    run(main)
