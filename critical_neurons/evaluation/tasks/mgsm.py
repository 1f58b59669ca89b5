"""MGSM: the raw question as prompt, a number read from the response, accuracy over all samples per language.

The authors' scorer runs beside it (``critical_neurons.evaluation.reference.mgsm``): their regex cascade on the
lower-cased response, and accuracy over the "meaningful" responses only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.data import TEXT, load_rows, require_fields
from critical_neurons.evaluation.reference import mgsm as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, extraction_rate, group_accuracy, is_meaningful, rate

HUB = "juletxara/mgsm"
DEFAULTS = TaskDefaults("mgsm", "accuracy", ("accuracy", "strict_accuracy", "total_samples", "extraction_rate", "meaningful_response_rate"), max_length=2048, max_new_tokens=512, output_file="results/mgsm_results.json", reference_metric="reference.exact_match_accuracy")
LANGUAGES = ("en", "es", "fr", "de", "ru", "zh", "ja", "th", "sw", "bn", "te")
FIELDS = {"question": TEXT, "answer_number": TEXT}
TOLERANCE = 1e-6
# A number not glued to a preceding ASCII letter or digit (CJK text may touch it): "1,000" with
# thousands separators, then an optional decimal part; a minus sign only when it is not a hyphen.
NUMBER = r"(?<![0-9A-Za-z_])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
ANSWER_IS = re.compile(rf"(?i:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*:|answer\s*:)\s*[:=]?\s*[*$\\(]*\s*({NUMBER})")


def language_source(source: str | None, language: str, languages: Sequence[str]) -> str:
    """Where one language's rows come from: the hub (config = language), a hub id, or a path with ``{lang}``."""
    if source is None:
        if language not in LANGUAGES:
            raise UsageError("--languages", f"{language!r} is not an MGSM language", f"choose from {','.join(LANGUAGES)}")
        return HUB
    if "{lang}" in source:
        return source.format(lang=language)
    if len(languages) > 1 and (Path(source).expanduser().exists() or Path(source).suffix):
        raise UsageError("--dataset_path", f"one file cannot hold several languages ({','.join(languages)})", "put {lang} in the path, e.g. data/mgsm_{lang}.jsonl")
    return source


def load_samples(source: str | None = None, languages: Sequence[str] = ("en",), split: str = "test") -> list[dict[str, Any]]:
    """Questions of each language in order; the gold is ``answer_number`` (``answer`` is empty on the test split)."""
    if not languages:
        raise UsageError("--languages", "names no language", f"use e.g. en or {','.join(LANGUAGES)}")
    samples = []
    for language in languages:
        path = language_source(source, language, languages)
        rows = load_rows(path, config=language, split=split)
        require_fields(rows, FIELDS, path)
        for index, row in enumerate(rows):
            try:
                gold = float(str(row["answer_number"]).replace(",", ""))
            except ValueError:
                raise UsageError("--dataset_path", f"{path} row {index} has no numeric answer_number", "pass MGSM data with numeric gold answers") from None
            samples.append({"id": f"{language}-{index}", "language": language, "question": str(row["question"]), "answer": format_number(gold)})
    return samples


def build_prompt(sample: dict[str, Any]) -> str:
    """Only the question text: no instruction, no exemplars (the reference)."""
    return sample["question"]


def format_number(value: float) -> str:
    """``1000.0`` -> "1000", ``1234.5`` -> "1234.5"."""
    return str(int(value)) if value.is_integer() else repr(value)


def parse_number(text: str) -> str:
    """A matched number without separators or a trailing ".0": "1,000" -> "1000", "-3.50" -> "-3.5"."""
    return format_number(float(text.replace(",", "")))


def extract_answer(text: str, *, strict: bool = False) -> str | None:
    """The number after the last "the answer is" (or "answer:"), else the last number; None without one.

    ``strict`` keeps only the first rule. The reference's number pattern split thousands
    separators ("1,000." read as 0) and its "so"/"thus" cues also matched inside words.
    """
    stated = ANSWER_IS.findall(text)
    if stated or strict:
        return parse_number(stated[-1]) if stated else None
    numbers = re.findall(NUMBER, text)
    return parse_number(numbers[-1]) if numbers else None


def _matches(predicted: str | None, gold: str) -> bool:
    return predicted is not None and math.isclose(float(predicted), float(gold), rel_tol=0.0, abs_tol=TOLERANCE)


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """One sample's record: the number read (flexible and strict), the gold, correctness, the diagnostic."""
    predicted = extract_answer(response)
    return {
        "id": sample["id"],
        "language": sample["language"],
        "extracted_answer": predicted,
        "gold": sample["answer"],
        "is_correct": _matches(predicted, sample["answer"]),
        "is_strict_correct": _matches(extract_answer(response, strict=True), sample["answer"]),
        "is_meaningful": is_meaningful(response),
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over all samples (the reference divided by "meaningful" responses only), per language."""
    return {
        "accuracy": rate(details, "is_correct"),
        "strict_accuracy": rate(details, "is_strict_correct"),
        "total_correct": sum(detail["is_correct"] for detail in details),
        "extraction_rate": extraction_rate(details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
        "language_accuracies": group_accuracy(details, "language"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail."""
    return {"id": detail["id"], "language": detail["language"], "answer": detail["gold"]}


def task() -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level."""
    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference.score, reference_aggregate=reference.aggregate)
