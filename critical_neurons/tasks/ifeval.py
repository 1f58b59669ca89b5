"""IFEval: the raw prompt, scored by the official instruction checkers (shipped by ``if-verifiable``).

The reference used 24 hand-written heuristics that diverge from the official definitions and never
pass four official instruction types; here every instruction goes through Google's checkers, strict
(the response as is) and loose (the official eight variants: without first/last line, without ``*``).
The authors' heuristics run beside them (``reference_score``), re-implemented from their behaviour.
"""

from __future__ import annotations

import contextlib
import json
import re
import string
from collections.abc import Callable, Iterator
from typing import Any

import nltk
from if_verifiable.common import evaluate_instructions
from if_verifiable.ifeval import instructions_util
from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
from langdetect import DetectorFactory

from critical_neurons.data import load_rows, require_fields
from critical_neurons.errors import UsageError
from critical_neurons.tasks.common import GenerativeTask, TaskDefaults, is_meaningful, mean, rate, ratio, reference_view

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


# The authors' heuristic checkers, re-implemented from their behaviour. Each one first re-applies the
# "meaningful" rule to the text it sees; numbers and relations come from loosely read kwargs.
REFERENCE_UNSUPPORTED = (
    "length_constraints:nth_paragraph_first_word",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "combination:repeat_prompt",
)
_NUMBER_KEYS = ("num_words", "num_sentences", "num_paragraphs", "frequency", "number", "count")
_RELATION_KEYS = ("relation", "comparison", "operator")
_RELATIONS = ("less than", "more than", "at least", "exactly")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_FRENCH_WORDS = frozenset({"le", "la", "les", "de", "des", "du", "un", "une", "et", "est", "en", "que", "qui", "dans", "pour", "pas", "sur"})
_SPANISH_WORDS = frozenset({"el", "la", "los", "las", "de", "del", "un", "una", "y", "es", "en", "que", "por", "para", "con", "no"})
_POSTSCRIPTS = ("P.S.", "PS:", "Postscript:", "P.P.S.", "Note:")
_PLACEHOLDERS = (r"\[[^\]]*\]", r"\{[^}]*\}", r"<[^>]*>", r"___")
_TWO_RESPONSE_MARKERS = ("response 1:", "response 2:", "answer 1:", "answer 2:", "option 1:", "option 2:", "first:", "second:", "1.", "2.")
_SECTION_START = re.compile(r"#+\s|\d+\.|[A-Z][a-z]*:|\*\*")
_HIGHLIGHTS = (r"\*\*[^*]+\*\*", r"\*[^*]+\*", r"__[^_]+__", r"_[^_]+_")


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)


def _reference_number(kwargs: dict[str, Any]) -> int | None:
    """The first int (or digit string) among the usual count keys; else the first int value; else the first digit run of a string value."""
    for key in _NUMBER_KEYS:
        value = kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    for value in kwargs.values():
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for value in kwargs.values():
        digits = re.search(r"\d+", value) if isinstance(value, str) else None
        if digits:
            return int(digits.group())
    return None


def _reference_relation(kwargs: dict[str, Any]) -> str:
    """A ``relation``/``comparison``/``operator`` key's value as text (None reads "none", which always fails);
    else a relation phrase found in a string value; else "at least"."""
    for key in _RELATION_KEYS:
        if key in kwargs:
            return str(kwargs[key]).lower()
    for value in kwargs.values():
        if isinstance(value, str):
            found = next((phrase for phrase in _RELATIONS if phrase in value.lower()), None)
            if found:
                return found
    return "at least"


def _compare(count: int, kwargs: dict[str, Any]) -> bool:
    """count against the kwargs' number under their relation; "more than" and unknown relations fail."""
    number = _reference_number(kwargs)
    if number is None:
        return False
    relation = _reference_relation(kwargs)
    if relation == "less than":
        return count < number
    if relation == "at least":
        return count >= number
    return relation == "exactly" and count == number


def _language(text: str, kwargs: dict[str, Any]) -> bool:
    code = str(kwargs.get("language", "")).lower()
    if "zh" in code or "chinese" in code:
        return bool(_CJK.search(text))
    for words, names in ((_FRENCH_WORDS, ("fr", "french")), (_SPANISH_WORDS, ("es", "spanish"))):
        if any(name in code for name in names):
            return sum(token in words for token in text.lower().split()) >= 3
    if "en" in code or "english" in code:
        return not _CJK.search(text)
    return False


def _at_least(count: int, kwargs: dict[str, Any]) -> bool:
    """count >= the kwargs' number (no relation read)."""
    number = _reference_number(kwargs)
    return number is not None and count >= number


def _count_matches(patterns: tuple[str, ...], text: str) -> int:
    return sum(len(re.findall(pattern, text)) for pattern in patterns)


def _number_words(text: str, kwargs: dict[str, Any]) -> bool:
    return _compare(sum(bool(token.strip(string.punctuation)) and _has_letter(token) for token in text.split()), kwargs)


def _number_sentences(text: str, kwargs: dict[str, Any]) -> bool:
    return _compare(sum(len(piece.strip()) > 3 and _has_letter(piece) for piece in re.split(r"[.!?]+", text)), kwargs)


def _number_paragraphs(text: str, kwargs: dict[str, Any]) -> bool:
    """Paragraphs split on a blank line (not the official ``***``)."""
    return _compare(sum(len(piece.strip()) > 10 and _has_letter(piece) for piece in text.split("\n\n")), kwargs)


def _keyword_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    return "keyword" in kwargs and _compare(text.lower().count(str(kwargs["keyword"]).lower()), kwargs)


def _letter_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    return "letter" in kwargs and _compare(text.lower().count(str(kwargs["letter"]).lower()), kwargs)


def _quotation(text: str, kwargs: dict[str, Any]) -> bool:
    """ASCII quotes only: the authors' curly-quote alternative was a typo that never matched."""
    stripped = text.strip()
    return any(stripped.startswith(quote) and stripped.endswith(quote) for quote in ('"', "'"))


def _json(text: str, kwargs: dict[str, Any]) -> bool:
    """The stripped text, or its first greedy ``{...}`` span, parses as JSON."""
    span = re.search(r"\{.*\}", text, re.DOTALL)
    for candidate in (text.strip(), span.group() if span else None):
        if candidate is None:
            continue
        try:
            json.loads(candidate)
        except ValueError:
            continue
        return True
    return False


def _title(text: str, kwargs: dict[str, Any]) -> bool:
    """A line starting "Title:", "# ", "## " or "### ", or framed by ``###`` or ``**`` (not the official ``<<title>>``)."""
    lines = [line.strip() for line in text.split("\n")]
    return any(line.startswith(("Title:", "# ", "## ", "### ")) or re.match(r"###.*###|\*\*.*\*\*", line) for line in lines)


def _multiple_sections(text: str, kwargs: dict[str, Any]) -> bool:
    """Lines starting like a heading (``#``, "1.", "Word:", ``**``); the kwargs' splitter is ignored."""
    return _at_least(sum(bool(_SECTION_START.match(line.strip())) for line in text.split("\n")), kwargs)


REFERENCE_CHECKERS: dict[str, Callable[[str, dict[str, Any]], bool]] = {
    "language:response_language": _language,
    "length_constraints:number_words": _number_words,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "detectable_content:number_placeholders": lambda text, kwargs: _at_least(_count_matches(_PLACEHOLDERS, text), kwargs),
    "detectable_content:postscript": lambda text, kwargs: any(marker in text for marker in _POSTSCRIPTS),
    "keywords:existence": lambda text, kwargs: all(str(keyword).lower() in text.lower() for keyword in kwargs.get("keywords") or []),
    "keywords:frequency": _keyword_frequency,
    "keywords:forbidden_words": lambda text, kwargs: not any(str(word).lower() in text.lower() for word in kwargs.get("forbidden_words") or []),
    "keywords:letter_frequency": _letter_frequency,
    "startend:end_checker": lambda text, kwargs: text.strip().endswith(str(kwargs.get("end_phrase", ""))),
    "startend:quotation": _quotation,
    "punctuation:no_comma": lambda text, kwargs: "," not in text,
    "change_case:english_capital": lambda text, kwargs: all(char.isupper() for char in text if char.isalpha()),
    "change_case:english_lowercase": lambda text, kwargs: all(char.islower() for char in text if char.isalpha()),
    "change_case:capital_word_frequency": lambda text, kwargs: _compare(sum(token.isupper() and token.isalpha() and len(token) > 1 for token in text.split()), kwargs),
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "combination:two_responses": lambda text, kwargs: sum(marker in text.lower() for marker in _TWO_RESPONSE_MARKERS) >= 2,
    "detectable_format:multiple_sections": _multiple_sections,
    "detectable_format:number_highlighted_sections": lambda text, kwargs: _at_least(_count_matches(_HIGHLIGHTS, text), kwargs),
}


def loose_variants(text: str) -> list[str]:
    """The eight loose variants: the text, without its first line, its last line or both, each also without ``*``."""
    lines = text.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [text, text.replace("*", ""), *cut, *(variant.replace("*", "") for variant in cut)]


def reference_check(text: str, instruction_id: str, kwargs: dict[str, Any]) -> bool:
    """One authors' checker on one text: False for a "meaningless" text and for the four official ids they lacked."""
    checker = REFERENCE_CHECKERS.get(instruction_id)
    if checker is None or not is_meaningful(text):
        return False
    try:
        return bool(checker(text, kwargs))
    except Exception:  # the authors counted a raising checker as not followed
        return False


def reference_score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """The authors' verdicts on the stripped response: strict (as is) and loose (any variant passes);
    a "meaningless" response follows no instruction."""
    text = response.strip()
    meaningful = is_meaningful(text)
    variants = loose_variants(text)
    strict, loose = [], []
    for instruction_id, kwargs in zip(sample["instruction_id_list"], sample["kwargs"]):
        strict.append(meaningful and reference_check(text, instruction_id, kwargs))
        loose.append(meaningful and any(reference_check(variant, instruction_id, kwargs) for variant in variants))
    return {
        "strict_follow_instruction_list": strict,
        "loose_follow_instruction_list": loose,
        "follow_all_instructions_strict": all(strict),
        "follow_all_instructions_loose": all(loose),
        "is_meaningful": meaningful,
    }


def reference_aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """The authors' metrics and names: the same accuracies over all prompts, and the meaningless count."""
    view = reference_view(details)
    meaningless = sum(not detail["is_meaningful"] for detail in view)
    return {**_instruction_metrics(view), "meaningless_responses": meaningless, "meaningless_response_rate": ratio(meaningless, len(view))}


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail (the prompt is the raw IFEval prompt)."""
    return {"key": detail["key"], "prompt": detail["prompt"], "instruction_id_list": detail["instruction_id_list"], "kwargs": detail["kwargs"]}


def task() -> GenerativeTask:
    """The parts ``evaluate_generative`` runs at each masking level."""
    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference_score, reference_aggregate=reference_aggregate)

