"""lm-evaluation-harness tasks on the already-loaded (and masked) model, one call per masking level.

lm-eval's ``HFLM`` wraps a model object, so hooks and folded weights apply to everything it runs.
Local task YAML (``--include_path``) with local data files works offline.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
from collections.abc import Iterable, Sequence
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


def _files_digest(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 (16 hex digits) of (name, content) pairs, in the given order."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def include_digest(include_path: str | None) -> str | None:
    """sha256 (16 hex digits) of every file under ``include_path`` (names and content): the local tasks and their data."""
    if include_path is None:
        return None
    return _files_digest((str(path.relative_to(include_path)), path) for path in sorted(Path(include_path).rglob("*")) if path.is_file())


def load_tasks(manager: Any, tasks: Sequence[str]) -> dict[str, Any]:
    """Every leaf task behind ``tasks`` (groups expanded), with its data loaded now, before the model:
    a missing data file or a hub dataset out of reach is one line naming --tasks, not a traceback later."""
    loaded: dict[str, Any] = {}
    for name in tasks:
        try:
            loaded.update(manager.load([name])["tasks"])
        except Exception as error:  # datasets and lm-eval raise many kinds (missing file, offline hub, bad config)
            problem = " ".join(str(error).split())[:300]
            raise UsageError("--tasks", f"lm-eval cannot load task {name} ({type(error).__name__}: {problem})", "check the data files its YAML names, or the network for hub tasks") from None
    return loaded


def _named_paths(config: Any) -> list[str]:
    """The paths a task's config names for its data: ``dataset_path`` (unless a builder such as ``json``),
    ``dataset_kwargs.data_dir`` and every ``dataset_kwargs.data_files`` entry."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    kwargs = config.dataset_kwargs or {}
    names = [kwargs.get("data_dir")]
    if config.dataset_path not in _PACKAGED_DATASETS_MODULES:
        names.append(config.dataset_path)
    files = kwargs.get("data_files")
    for value in files.values() if isinstance(files, dict) else [files]:
        names += value if isinstance(value, (list, tuple)) else [value]
    return [name for name in names if isinstance(name, str)]


def task_data_digest(loaded: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of every local file the loaded tasks' configs name for their data
    (globs expanded, folders walked), wherever it lives: an edited data file outside --include_path
    changes the run key too. Hub datasets name no local file."""
    paths: set[Path] = set()
    for task in loaded.values():
        for name in _named_paths(task.config):
            for match in glob.glob(os.path.expanduser(name), recursive=True):
                found = Path(match).resolve()
                paths |= {path for path in found.rglob("*") if path.is_file()} if found.is_dir() else {found}
    return _files_digest((str(path), path) for path in sorted(paths))


def expected_metrics(loaded: dict[str, Any]) -> set[str]:
    """The ``task/metric`` names the loaded leaf tasks' configs promise (group aggregates not included)."""
    names = set()
    for task_name, task in loaded.items():
        filters = [entry.get("name", "none") for entry in task.config.filter_list or []] or ["none"]
        for entry in task.config.metric_list or []:
            names |= {_flat_name(task_name, entry.get("metric"), filter_name) for filter_name in filters}
    return names


def check_primary_metric(primary_metric: str | None, tasks: Sequence[str], loaded: dict[str, Any]) -> None:
    """``--primary_metric`` names a task of this run and, where that task lists its metrics, one of them
    (checked before the model loads; :func:`evaluate_tasks` checks the results themselves)."""
    if primary_metric is None:
        return
    task_name = primary_metric.partition("/")[0]
    known = sorted(name for name in expected_metrics(loaded) if name.startswith(f"{task_name}/"))
    if known and primary_metric not in known:  # a task without a metric_list gets lm-eval's defaults
        raise UsageError("--primary_metric", f"task {task_name} has no metric {primary_metric!r}", f"use one of {', '.join(known)}")
    if task_name not in loaded and task_name not in tasks:
        raise UsageError("--primary_metric", f"{primary_metric!r} names no task of this run", 'use "task/metric" with a task from --tasks')


def _flat_name(task: str, metric: str, filter_name: str) -> str:
    return f"{task}/{metric}" if filter_name in ("", "none") else f"{task}/{metric}[{filter_name}]"


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"task/metric": value}`` from lm-eval's per-task results (filter ``none`` dropped from the name, stderr left out)."""
    flat = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            if key == "alias" or "_stderr" in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric, _, filter_name = key.partition(",")
            flat[_flat_name(task, metric, filter_name)] = float(value)
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
    primary_metric: str | None = None,
) -> tuple[dict[str, Any], str]:
    """One lm-eval run of ``lm`` (see :func:`wrap_model`) under the current masks: flat metrics beside
    lm-eval's own results dict, and the headline metric (``primary_metric``, which must be among the
    results, else the first task's first listed metric)."""
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
    if primary_metric is not None and primary_metric not in metrics:
        raise UsageError("--primary_metric", f"lm-eval reported no {primary_metric!r}", f"use one of {', '.join(sorted(metrics))}")
    first_metric = next(iter(output["higher_is_better"].get(tasks[0], {})), "")
    entry = {**metrics, "lm_eval": {key: output.get(key) for key in ("results", "versions", "n-shot", "higher_is_better", "n-samples")}}
    return entry, primary_metric or f"{tasks[0]}/{first_metric}"
