"""What every benchmark module provides (its defaults and its parts), and helpers several share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from critical_neurons.evaluation.reference.common import is_meaningful as is_meaningful  # the one gate, re-exported for the tasks


@dataclass(frozen=True)
class TaskDefaults:
    """A benchmark's own defaults: its method name, headline metric, summary columns and lengths.

    ``max_new_tokens`` is None for perplexity tasks. Every evaluator's flags and every report read these.
    ``reference_metric`` names the authors' own headline figure (e.g. ``reference.pass_rate``), which
    the report puts beside the corrected one.
    """

    name: str
    primary_metric: str
    summary_columns: tuple[str, ...]
    max_length: int
    max_new_tokens: int | None = None
    output_file: str = ""
    reference_metric: str = ""  # the authors' headline figure in a level entry; dotted for the ``reference`` block

    @property
    def generative(self) -> bool:
        return self.max_new_tokens is not None


@dataclass(frozen=True)
class GenerativeTask:
    """A generative benchmark's parts: prompt, score (extraction inside), aggregate; data is loaded by the script.

    ``reference_score`` and ``reference_aggregate`` are the authors' scorer and metrics, reproduced
    with their quirks, so every result shows both side by side. ``reference_aggregate`` reads the
    same per-sample details as ``aggregate`` (each holds its ``reference`` block). Every function
    here must work on a sample rebuilt from a stored detail (the module's ``sample_from_detail``),
    so results can be rescored without the model.
    """

    build_prompt: Callable[[dict[str, Any]], str]
    score: Callable[[dict[str, Any], str], dict[str, Any]]
    aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    reference_score: Callable[[dict[str, Any], str], dict[str, Any]]
    reference_aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]]

def reference_view(details: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each detail with its ``reference`` block's keys in place of the corrected ones (for the authors' aggregates)."""
    return [{**detail, **detail["reference"]} for detail in details]


def mean(values: Iterable[float]) -> float | None:
    """Mean, or None for an empty collection (no ZeroDivisionError on an empty set)."""
    values = list(values)
    return sum(values) / len(values) if values else None


def rate(details: Sequence[dict[str, Any]], key: str) -> float | None:
    """Fraction of samples whose ``key`` is truthy."""
    return mean(float(bool(detail.get(key))) for detail in details)


def extraction_rate(details: Sequence[dict[str, Any]]) -> float | None:
    """Fraction of samples from which an answer was read (``extracted_answer`` not None)."""
    return mean(float(detail["extracted_answer"] is not None) for detail in details)


def answer_letters(text: str, letters: str, lead: str = r"the\s+answer\s+is") -> list[str]:
    """Option letters stated right after ``lead`` (e.g. "The answer is (X)"), upper-cased, in order of appearance.

    The phrase matches in any case and "(c)" in any case, but a bare letter only in upper case and
    as a whole word: the reference upper-cased the text first, so "the answer is always" read as A
    and "is because" as B. A bare "I" followed by a lower-case word is the pronoun ("is I think").
    ``letters`` is a regex class body such as ``A-J``.
    """
    pattern = rf"(?i:{lead})\s*:?\s*\**\s*(?:\(((?i:[{letters}]))\)|([{letters}])(?![\w'])(?!(?<=I)\s+[a-z]))"
    return [(enclosed or bare).upper() for enclosed, bare in re.findall(pattern, text)]


def group_accuracy(details: Sequence[dict[str, Any]], key: str, correct_key: str = "is_correct") -> dict[str, dict[str, Any]]:
    """``{group: {accuracy, correct, total}}`` per value of ``key`` (category, subject, language), sorted by name."""
    groups: dict[str, list[bool]] = {}
    for detail in details:
        groups.setdefault(str(detail.get(key)), []).append(bool(detail.get(correct_key)))
    return {name: {"accuracy": mean(map(float, flags)), "correct": sum(flags), "total": len(flags)} for name, flags in sorted(groups.items())}
