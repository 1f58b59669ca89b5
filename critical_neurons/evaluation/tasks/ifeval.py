"""IFEval: the raw prompt, scored by the official instruction checkers (shipped by ``if-verifiable``).

The reference used 24 hand-written heuristics that diverge from the official definitions and never
pass four official instruction types; here every instruction goes through Google's checkers, strict
(the response as is) and loose (the official eight variants: without first/last line, without ``*``).
The authors' heuristics run beside them (``critical_neurons.evaluation.reference.ifeval``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import nltk
from if_verifiable.common import evaluate_instructions
from if_verifiable.ifeval import instructions_util
from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
from langdetect import DetectorFactory

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.data import load_rows, require_fields
from critical_neurons.evaluation.reference import ifeval as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, is_meaningful, mean, rate

HUB = "google/IFEval"
DEFAULTS = TaskDefaults("ifeval", "strict_prompt_accuracy", ("strict_prompt_accuracy", "loose_prompt_accuracy", "strict_instruction_accuracy", "loose_instruction_accuracy", "meaningful_response_rate"), max_length=2048, max_new_tokens=512, output_file="results/ifeval_results.json", reference_metric="reference.strict_prompt_accuracy")
FIELDS = {"key": (int, str), "prompt": str, "instruction_id_list": list, "kwargs": (list, type(None))}
UNTRAINED_SPLITTER = "untrained nltk PunktSentenceTokenizer (NLTK punkt data absent; offline)"
TRAINED_SPLITTER = "nltk punkt (english)"
PUNKT = "tokenizers/punkt/english.pickle"  # if-verifiable's sentence counter
PUNKT_TAB = "tokenizers/punkt_tab/english/"  # nltk.word_tokenize


def load_samples(source: str | None = None, split: str = "train") -> list[dict[str, Any]]:
    """Prompts with one kwargs dict per instruction, None values dropped.

    The hub's parquet stores kwargs as a struct, so every dict carries every key of every
    instruction type, absent ones as None; the checkers must see only their own arguments (the
    reference's relation lookup failed on exactly this).
    """
    rows = load_rows(source or HUB, split=split)
    require_fields(rows, FIELDS, source or HUB)
    samples = []
    for index, row in enumerate(rows):
        ids = [str(instruction) for instruction in row["instruction_id_list"]]
        kwargs = list(row["kwargs"] or [])
        unknown = [instruction for instruction in ids if instruction not in INSTRUCTION_DICT]
        if unknown or not all(entry is None or isinstance(entry, dict) for entry in kwargs):
            problem = f"unknown instruction ids {', '.join(unknown)}" if unknown else "kwargs holds a non-object entry"
            raise UsageError("--dataset_path", f"{source or HUB} row {index}: {problem}", "pass data in google/IFEval's schema")
        kwargs += [{}] * (len(ids) - len(kwargs))
        samples.append(
            {
                "key": row["key"],
                "prompt": str(row["prompt"]),
                "instruction_id_list": ids,
                "kwargs": [{name: value for name, value in (entry or {}).items() if value is not None} for entry in kwargs[: len(ids)]],
            }
        )
    return samples


def build_prompt(sample: dict[str, Any]) -> str:
    """The raw prompt, no template (the reference)."""
    return sample["prompt"]


def _has_nltk_data(resource: str) -> bool:
    try:
        nltk.data.find(resource)
    except LookupError:
        return False
    return True


def sentence_splitter() -> str:
    """Which splitter ``number_sentences`` and ``capital_word_frequency`` use here (for ``dataset_info``)."""
    return TRAINED_SPLITTER if _has_nltk_data(PUNKT) and _has_nltk_data(PUNKT_TAB) else UNTRAINED_SPLITTER


@contextlib.contextmanager
def offline_checkers() -> Iterator[None]:
    """Make the official checkers run without network or NLTK data, and deterministically.

    The sentence counter loads NLTK's punkt model and ``word_tokenize`` (capital-word frequency)
    loads punkt_tab; the nltk wheel ships neither and this project never calls ``nltk.download``.
    Where the data is absent, an untrained ``PunktSentenceTokenizer`` takes its place (it splits
    after every ``.``/``?``/``!`` followed by a space, abbreviations included) until exit.
    langdetect (response language) is random unless seeded; seed 0 makes reruns agree.
    """
    saved = (instructions_util._get_sentence_tokenizer, nltk.tokenize._get_punkt_tokenizer, DetectorFactory.seed)
    untrained = nltk.tokenize.PunktSentenceTokenizer()
    if not _has_nltk_data(PUNKT):
        instructions_util._get_sentence_tokenizer = lambda: untrained
    if not _has_nltk_data(PUNKT_TAB):
        nltk.tokenize._get_punkt_tokenizer = lambda language="english": untrained
    DetectorFactory.seed = 0
    try:
        yield
    finally:
        instructions_util._get_sentence_tokenizer, nltk.tokenize._get_punkt_tokenizer, DetectorFactory.seed = saved


def check_instructions(response: str, prompt: str, instruction_ids: list[str], kwargs: list[dict[str, Any]]) -> dict[str, Any]:
    """Strict and loose verdict per instruction, one official checker call each.

    Unlike a bare ``evaluate_instructions`` call, an unknown instruction id or an empty response
    counts as not followed (the package drops them from the count) and a checker that raises fails
    only its own instruction, with the error kept.
    """
    strict, loose, errors = [], [], {}
    with offline_checkers():
        for instruction_id, arguments in zip(instruction_ids, kwargs):
            if instruction_id not in INSTRUCTION_DICT:
                errors[instruction_id] = "unknown instruction id"
                strict.append(False)
                loose.append(False)
                continue
            try:
                results, _ = evaluate_instructions(response, [instruction_id], [arguments], prompt, INSTRUCTION_DICT)
            except Exception as error:  # a checker bug must not end a long run
                errors[instruction_id] = f"{type(error).__name__}: {error}"
                results = []
            strict.append(bool(results and results[0].strict_pass))
            loose.append(bool(results and results[0].loose_pass))
    return {"strict_follow_instruction_list": strict, "loose_follow_instruction_list": loose, "checker_errors": errors}


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    verdicts = check_instructions(response, sample["prompt"], sample["instruction_id_list"], sample["kwargs"])
    return {
        "key": sample["key"],
        "instruction_id_list": sample["instruction_id_list"],
        "kwargs": sample["kwargs"],
        **verdicts,
        "follow_all_instructions_strict": all(verdicts["strict_follow_instruction_list"]),
        "follow_all_instructions_loose": all(verdicts["loose_follow_instruction_list"]),
        "is_meaningful": is_meaningful(response),
    }


def _instruction_metrics(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Prompt-level and instruction-level accuracy, strict and loose, and accuracy per instruction id."""
    per_id: dict[str, dict[str, int]] = {}
    strict_flags, loose_flags = [], []
    for detail in details:
        for instruction_id, strict, loose in zip(detail["instruction_id_list"], detail["strict_follow_instruction_list"], detail["loose_follow_instruction_list"]):
            counts = per_id.setdefault(instruction_id, {"strict_correct": 0, "loose_correct": 0, "total": 0})
            counts["strict_correct"] += strict
            counts["loose_correct"] += loose
            counts["total"] += 1
            strict_flags.append(float(strict))
            loose_flags.append(float(loose))
    return {
        "strict_prompt_accuracy": rate(details, "follow_all_instructions_strict"),
        "loose_prompt_accuracy": rate(details, "follow_all_instructions_loose"),
        "strict_instruction_accuracy": mean(strict_flags),
        "loose_instruction_accuracy": mean(loose_flags),
        "strict_prompt_correct": sum(detail["follow_all_instructions_strict"] for detail in details),
        "loose_prompt_correct": sum(detail["follow_all_instructions_loose"] for detail in details),
        "strict_instruction_correct": int(sum(strict_flags)),
        "loose_instruction_correct": int(sum(loose_flags)),
        "total_prompts": len(details),
        "total_instructions": len(strict_flags),
        "instruction_accuracies": {
            instruction_id: {
                "strict_accuracy": counts["strict_correct"] / counts["total"],
                "loose_accuracy": counts["loose_correct"] / counts["total"],
                **counts,
            }
            for instruction_id, counts in sorted(per_id.items())
        },
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Prompt- and instruction-level accuracy (strict, loose, per id), checker errors and the meaningful diagnostic."""
    return {
        **_instruction_metrics(details),
        "checker_error_count": sum(len(detail["checker_errors"]) for detail in details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail (the prompt is the raw IFEval prompt)."""
    return {"key": detail["key"], "prompt": detail["prompt"], "instruction_id_list": detail["instruction_id_list"], "kwargs": detail["kwargs"]}


def task() -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level."""
    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference.score, reference_aggregate=reference.aggregate)

