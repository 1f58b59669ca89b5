"""lm-evaluation-harness tasks on the already-loaded (and masked) model, one call per masking level.

lm-eval's ``HFLM`` wraps a model object, so hooks and folded weights apply to everything it runs.
Local task YAML (``--include_path``) with local data files works offline.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.errors import UsageError

logger = logging.getLogger(__name__)


def task_manager(include_path: str | None) -> Any:
    """lm-eval's task index, with the tasks under ``include_path`` added."""
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise UsageError("--include_path", f"{include_path} is not a folder", "pass the folder holding your task YAML files")
    return TaskManager(include_path=include_path)


def check_tasks(manager: Any, tasks: Sequence[str]) -> None:
    """Every task name is known to lm-eval (stock or under ``--include_path``), before the model loads."""
    known = set(manager.all_tasks)
    unknown = [task for task in tasks if task not in known]
    if unknown:
        raise UsageError("--tasks", f"lm-eval knows no task {', '.join(unknown)}", "check the names (lm_eval --tasks list) or pass --include_path")


def include_digest(include_path: str | None) -> str | None:
    """sha256 (16 hex digits) of every file under ``include_path`` (names and content): the local tasks and their data."""
    if include_path is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(Path(include_path).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(include_path)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"task/metric": value}`` from lm-eval's per-task results (filter ``none`` dropped from the name, stderr left out)."""
    flat = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            if key == "alias" or "_stderr" in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric, _, filter_name = key.partition(",")
            flat[f"{task}/{metric}" if filter_name in ("", "none") else f"{task}/{metric}[{filter_name}]"] = float(value)
    return flat


def wrap_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 8) -> Any:
    """lm-eval's HF wrapper around the loaded model object, built once for every level."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def evaluate_tasks(
    lm: Any,
    tasks: Sequence[str],
    manager: Any,
    *,
    num_fewshot: int | None = None,
    limit: int | None = None,
    seed: int = 42,
) -> tuple[dict[str, Any], str]:
    """One lm-eval run of ``lm`` (see :func:`wrap_model`) under the current masks: flat metrics beside
    lm-eval's own results dict, and the headline metric (the first task's first listed metric)."""
    import lm_eval

    output = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=manager,
        log_samples=False,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    metrics = flat_metrics(output["results"])
    non_finite = [name for name, value in metrics.items() if not math.isfinite(value)]
    if non_finite:
        logger.warning("Non-finite lm-eval metrics (written as null): %s", ", ".join(non_finite))
    first_metric = next(iter(output["higher_is_better"].get(tasks[0], {})), "")
    entry = {**metrics, "lm_eval": {key: output.get(key) for key in ("results", "versions", "n-shot", "higher_is_better", "n-samples")}}
    return entry, f"{tasks[0]}/{first_metric}"
