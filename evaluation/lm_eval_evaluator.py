"""Any lm-evaluation-harness task with the top-N records of a neuron file masked, at each masking level.

    python evaluation/lm_eval_evaluator.py --model_path models/smollm2-135m \
        --neuron_file results/critical_neurons_result.json --masking_levels "0,1" \
        --tasks local_wikitext --include_path my_tasks --limit 50 \
        --output_file results/lm_eval_results.json

lm-eval runs on the model already loaded here (its HF wrapper takes a model object), so hooks or
folded weights apply. Stock tasks download their data from the hub; offline, write a task YAML
with ``dataset_path: json`` and local ``data_files`` under --include_path (see README).
"""

from critical_neurons.cli import ArgumentParser, integer, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.evaluation.evaluator_cli import EvaluatorRun, add_evaluator_arguments
from critical_neurons.evaluation.lm_eval_tasks import check_primary_metric, check_tasks, evaluate_tasks, include_digest, load_tasks, task_data_digest, task_manager, wrap_model
from critical_neurons.evaluation.tasks.common import TaskDefaults

DEFAULTS = TaskDefaults("lm_eval", "", (), max_length=2048, output_file="results/lm_eval_results.json")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_evaluator_arguments(parser, DEFAULTS, dataset=False)
    parser.add_argument("--tasks", required=True, help="comma-separated lm-eval task names, e.g. local_wikitext,arc_easy")
    parser.add_argument("--include_path", default=None, help="folder of extra task YAML files (local tasks and data)")
    parser.add_argument("--num_fewshot", type=integer(0), default=None, help="few-shot examples (default: each task's own)")
    parser.add_argument("--limit", type=integer(1), default=None, help="documents per task (default: all)")
    parser.add_argument("--primary_metric", default=None, help='headline metric as "task/metric" (default: the first metric of the first task)')
    args = parse_arguments(parser)
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    if not tasks:
        raise UsageError("--tasks", "names no task", "pass e.g. --tasks local_wikitext")
    with EvaluatorRun(args, DEFAULTS) as evaluator:
        manager = task_manager(args.include_path)
        check_tasks(manager, tasks)
        loaded = load_tasks(manager, tasks)
        check_primary_metric(args.primary_metric, tasks, loaded)
        selection = {"tasks": tasks, "limit": args.limit, "num_fewshot": args.num_fewshot, "include_files": include_digest(args.include_path), "data_files": task_data_digest(loaded)}
        model, tokenizer = evaluator.load_model()

        lm = wrap_model(model, tokenizer, args.batch_size)

        def evaluate() -> dict:
            metrics, primary = evaluate_tasks(lm, tasks, manager, num_fewshot=args.num_fewshot, limit=args.limit, seed=args.seed, primary_metric=args.primary_metric)
            evaluator.set_primary_metric(primary)
            return metrics

        evaluator.run(
            evaluate, samples=[selection], dataset_info={"tasks": tasks, "include_path": args.include_path}, selection=selection, primary_metric=args.primary_metric
        )


if __name__ == "__main__":
    run(main)
