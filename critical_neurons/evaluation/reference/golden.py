"""Goldens recorded from the authors' evaluators, and the comparison of their verdicts with our reference scorers.

A golden file (gzip JSON) holds ``samples`` (as our task module's ``load_samples`` returns them) and
``levels``: each a list of cases (a sample index, a response, the authors' per-sample verdict written
in our reference block's keys) with the authors' level metrics, or the error their code raised on it.
``scripts/compare_with_authors.py`` writes them from the authors' code; CI replays them against our
scorers without that code, with the same comparison.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks.common import GenerativeTask

FLOAT_TOLERANCE = 1e-12  # summation order only (numpy's mean against a Python sum)


def differences(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """Where ``ours`` differs from ``theirs``: one ``path: theirs != ours`` line per differing value.

    Dicts must have the same keys; numbers compare by value (``True`` equals ``1`` only as Python
    says), floats within a relative 1e-12; ``None`` never equals ``0.0``.
    """
    if isinstance(theirs, dict) and isinstance(ours, dict):
        lines = [f"{path}.{key}: missing in ours" for key in theirs if key not in ours]
        lines += [f"{path}.{key}: ours only" for key in ours if key not in theirs]
        for key in theirs:
            if key in ours:
                lines += differences(theirs[key], ours[key], f"{path}.{key}")
        return lines
    if isinstance(theirs, list) and isinstance(ours, list) and len(theirs) == len(ours):
        return [line for index, (one, other) in enumerate(zip(theirs, ours)) for line in differences(one, other, f"{path}[{index}]")]
    numbers = (int, float)
    if isinstance(theirs, numbers) and isinstance(ours, numbers) and isinstance(theirs, bool) == isinstance(ours, bool):
        if math.isclose(theirs, ours, rel_tol=FLOAT_TOLERANCE) or (math.isnan(theirs) and math.isnan(ours)):
            return []
    elif theirs == ours and type(theirs) is type(ours):
        return []
    return [f"{path or '.'}: theirs {theirs!r} != ours {ours!r}"]


def as_json(value: Any) -> Any:
    """``value`` as a result file stores it (tuples as lists, numpy scalars as numbers), so both sides compare alike."""
    return json.loads(json.dumps(value, default=lambda item: item.item()))


def score_level(task: GenerativeTask, samples: Sequence[dict[str, Any]], responses: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Our reference blocks for one level, per sample and the level's, through the evaluators' own path."""
    level = as_json(score_responses(task, samples, [task.build_prompt(sample) for sample in samples], responses))
    return [detail["reference"] for detail in level["detailed_results"]], level["reference"]


def compare_level(
    task: GenerativeTask, samples: Sequence[dict[str, Any]], responses: Sequence[str], their_samples: Sequence[dict[str, Any]], their_level: dict[str, Any] | None, not_compared: Sequence[str] = ()
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Disagreements on one level: ``[(case index, lines)]`` per sample, and lines for the level (none when theirs raised).

    ``not_compared`` names keys of our blocks left out of the comparison: their code has no counterpart
    (e.g. our grader's timeouts), or their value cannot be reproduced (a message naming their temporary file).
    """
    ours_samples, ours_level = score_level(task, samples, responses)
    ours_samples = [{key: value for key, value in block.items() if key not in not_compared} for block in ours_samples]
    ours_level = {key: value for key, value in ours_level.items() if key not in not_compared}
    per_sample = [(index, lines) for index, (theirs, ours) in enumerate(zip(their_samples, ours_samples)) if (lines := differences(theirs, ours))]
    return per_sample, differences(their_level, ours_level) if their_level is not None else []


def write_golden(path: Path, payload: dict[str, Any]) -> None:
    """Write a golden (gzip JSON, stable bytes for a stable payload).

    Keys keep their order: it is data (the authors' IFEval kwargs readers take the first number in dict order).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(json.dumps(payload, ensure_ascii=False).encode())


def read_golden(path: Path) -> dict[str, Any]:
    """A golden written by ``write_golden``."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def replay(golden: dict[str, Any], task: GenerativeTask) -> list[str]:
    """Every disagreement of our scorers with the authors' recorded outputs, one line each (levels their code raised on are skipped)."""
    lines = []
    for level in golden["levels"]:
        if level["raised"]:
            continue
        cases = level["cases"]
        responses = [case["response"] for case in cases]
        samples = [golden["samples"][case["sample"]] for case in cases]
        per_sample, per_level = compare_level(task, samples, responses, [case["theirs"] for case in cases], level["theirs"], golden["not_compared"])
        lines += [f"{level['name']}, response {responses[index]!r}: {line}" for index, found in per_sample for line in found]
        lines += [f"{level['name']} (level): {line}" for line in per_level]
    return lines
