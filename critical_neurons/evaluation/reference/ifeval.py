"""IFEval as the authors scored it: their 24 heuristic checkers, strict and loose, and their level metrics.

Their quirks kept, each checked against their code: every checker re-applies the "meaningful" gate to
the text it sees; numbers and relations are read loosely from any kwarg ("more than" reads as "at
least"); the upper/lower-case checks ask ``str.isupper``/``islower`` of the letters joined, so
uncased letters (CJK) pass beside cased ones; highlights and placeholders are lazy patterns within a
line, counted once per pattern (``**a**`` is three highlights); a title or section line is one of
their six or four patterns; the language check counts how many words of a short list occur; their
fourth quotation pair, a quoting typo, passes any text starting ``) and stripped.endswith(``. Four official
instruction types (and any unknown id) are never followed. A level with no prompt scores 0.0.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from typing import Any

from critical_neurons.evaluation.reference.common import is_meaningful, share

Checker = Callable[[str, dict[str, Any]], bool]

NUMBER_KEYS = ("num_words", "num_sentences", "num_paragraphs", "frequency", "number", "count")
RELATION_KEYS = ("relation", "comparison", "operator")
CJK = re.compile(r"[\u4e00-\u9fff]")
FRENCH_WORDS = frozenset({"le", "la", "les", "de", "et", "à", "un", "il", "être", "en", "avoir", "que", "pour", "avec", "ne", "se", "pas", "tout", "plus"})
SPANISH_WORDS = frozenset({"el", "la", "de", "que", "y", "a", "en", "un", "es", "se", "no", "te", "lo", "le", "da", "su", "por", "son", "con", "para"})
POSTSCRIPTS = ("P.S.", "PS:", "Postscript:", "P.P.S.", "Note:")
PLACEHOLDERS = tuple(re.compile(pattern) for pattern in (r"\[.*?\]", r"\{.*?\}", r"<.*?>", r"___+"))
HIGHLIGHTS = tuple(re.compile(pattern) for pattern in (r"\*\*.*?\*\*", r"\*.*?\*", r"__.*?__", r"_.*?_"))
TITLE = re.compile(r"(?:Title:|#{1,3} ).*|###.*###|\*\*.*\*\*")  # the whole stripped line
SECTION_START = re.compile(r"#+\s|\d+\.|[A-Z][a-z]*:|\*\*.*\*\*")
TWO_RESPONSE_MARKERS = ("response 1:", "response 2:", "answer 1:", "answer 2:", "option 1:", "option 2:", "first:", "second:", "1.", "2.")
# (start, end) pairs of the stripped text; the last is what their curly-quote pair parses as (one
# startswith call on the string literal ``) and stripped.endswith(``).
QUOTES = (('"', '"'), ("'", "'"), (") and stripped.endswith(", ""))


def number(kwargs: dict[str, Any]) -> int | None:
    """Their count: the first of ``NUMBER_KEYS`` that ``int()`` reads; else, in kwargs order, the first
    int value or the first digit run of a string value; else None (the instruction fails)."""
    for key in NUMBER_KEYS:
        if key in kwargs and isinstance(kwargs[key], (int, str)):
            try:
                return int(kwargs[key])
            except ValueError:
                continue
    for value in kwargs.values():
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            digits = re.search(r"\d+", value)
            if digits:
                return int(digits.group())
    return None


def relation(kwargs: dict[str, Any]) -> str:
    """A ``RELATION_KEYS`` value as lower-case text (None reads "none", which fails); else the first
    string value naming "less than", "more than"/"at least" (both read "at least") or "exactly"; else "at least"."""
    for key in RELATION_KEYS:
        if key in kwargs:
            return str(kwargs[key]).lower()
    for value in kwargs.values():
        if isinstance(value, str):
            lowered = value.lower()
            if "less than" in lowered:
                return "less than"
            if "more than" in lowered or "at least" in lowered:
                return "at least"
            if "exactly" in lowered:
                return "exactly"
    return "at least"


def compare(count: int, kwargs: dict[str, Any]) -> bool:
    """count against the kwargs' number under their relation; an unknown relation fails."""
    target = number(kwargs)
    if target is None:
        return False
    comparison = {"less than": count < target, "at least": count >= target, "exactly": count == target}
    return comparison.get(relation(kwargs), False)


def at_least(count: int, kwargs: dict[str, Any]) -> bool:
    """count >= the kwargs' number (no relation read)."""
    target = number(kwargs)
    return target is not None and count >= target


def _lookup(kwargs: dict[str, Any], key: str, alias: str) -> Any:
    """``kwargs[key]`` when present (None included), else ``kwargs[alias]``, else None."""
    return kwargs[key] if key in kwargs else kwargs.get(alias)


def _word_list(value: Any) -> list[Any] | None:
    """A text as a one-item list, a list as is, anything else None (the instruction fails)."""
    return [value] if isinstance(value, str) else value if isinstance(value, list) else None


def _first_text(value: Any) -> Any:
    """The first item of a list (None for an empty one), anything else as is."""
    return (value[0] if value else None) if isinstance(value, list) else value


def _language(text: str, kwargs: dict[str, Any]) -> bool:
    """A substring test on the language code: zh/chinese needs a CJK character; fr/french and
    es/spanish need 3 of their list's words among the whitespace tokens; en/english needs no CJK."""
    if "language" not in kwargs:
        return False
    code = kwargs["language"].lower()  # a non-text code raises: not followed
    words = set(text.lower().split())
    if "chinese" in code or "zh" in code:
        return bool(CJK.search(text))
    if "french" in code or "fr" in code:
        return len(FRENCH_WORDS & words) >= 3
    if "spanish" in code or "es" in code:
        return len(SPANISH_WORDS & words) >= 3
    if "english" in code or "en" in code:
        return not CJK.search(text)
    return False


def _number_words(text: str, kwargs: dict[str, Any]) -> bool:
    return compare(sum(any(char.isalpha() for char in token) and bool(token.strip(string.punctuation)) for token in text.split()), kwargs)


def _number_sentences(text: str, kwargs: dict[str, Any]) -> bool:
    pieces = (piece.strip() for piece in re.split(r"[.!?]+", text))
    return compare(sum(len(piece) > 3 and any(char.isalpha() for char in piece) for piece in pieces), kwargs)


def _number_paragraphs(text: str, kwargs: dict[str, Any]) -> bool:
    """Paragraphs split on a blank line (not the official ``***``), longer than 10 characters, with a letter."""
    pieces = (piece.strip() for piece in text.split("\n\n"))
    return compare(sum(len(piece) > 10 and any(char.isalpha() for char in piece) for piece in pieces), kwargs)


def _keywords_exist(text: str, kwargs: dict[str, Any]) -> bool:
    keywords = _word_list(_lookup(kwargs, "keywords", "keyword"))
    return bool(keywords) and all(keyword.lower() in text.lower() for keyword in keywords)


def _no_forbidden_words(text: str, kwargs: dict[str, Any]) -> bool:
    words = _word_list(_lookup(kwargs, "forbidden_words", "forbidden"))
    return words is not None and not any(word.lower() in text.lower() for word in words)


def _keyword_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    keyword = _first_text(_lookup(kwargs, "keyword", "keywords"))
    return isinstance(keyword, str) and bool(keyword.strip()) and compare(text.lower().count(keyword.lower()), kwargs)


def _letter_frequency(text: str, kwargs: dict[str, Any]) -> bool:
    letter = _first_text(_lookup(kwargs, "letter", "char"))
    return isinstance(letter, str) and len(letter) == 1 and compare(text.lower().count(letter.lower()), kwargs)


def _ends_with(text: str, kwargs: dict[str, Any]) -> bool:
    phrase = _lookup(kwargs, "end_phrase", "ending")
    return isinstance(phrase, str) and bool(phrase.strip()) and text.strip().endswith(phrase)


def _letters(text: str) -> str:
    return "".join(char for char in text if char.isalpha())


def _json(text: str, kwargs: dict[str, Any]) -> bool:
    """The stripped text, or else its first greedy ``{...}`` span, parses as JSON."""
    span = re.search(r"\{.*\}", text, re.DOTALL)
    for candidate in (text.strip(), span.group() if span else None):
        if candidate is not None:
            try:
                json.loads(candidate)
            except Exception:  # their bare except: a RecursionError too
                continue
            return True
    return False


def _multiple_sections(text: str, kwargs: dict[str, Any]) -> bool:
    """Lines starting like a heading (``#``, "1.", "Word:", ``**...**``); the kwargs' splitter is ignored."""
    return at_least(sum(bool(SECTION_START.match(line.strip())) for line in text.split("\n")), kwargs)


def _count(patterns: tuple[re.Pattern[str], ...], text: str) -> int:
    return sum(len(pattern.findall(text)) for pattern in patterns)


def _all_upper(text: str, kwargs: dict[str, Any]) -> bool:
    return _letters(text).isupper()


def _all_lower(text: str, kwargs: dict[str, Any]) -> bool:
    return _letters(text).islower()


def _two_responses(text: str, kwargs: dict[str, Any]) -> bool:
    return sum(marker in text.lower() for marker in TWO_RESPONSE_MARKERS) >= 2


CHECKERS: dict[str, Checker] = {
    "language:response_language": _language,
    "length_constraints:number_words": _number_words,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "detectable_content:number_placeholders": lambda text, kwargs: at_least(_count(PLACEHOLDERS, text), kwargs),
    "detectable_content:postscript": lambda text, kwargs: any(marker in text for marker in POSTSCRIPTS),
    "keywords:existence": _keywords_exist,
    "keywords:frequency": _keyword_frequency,
    "keywords:forbidden_words": _no_forbidden_words,
    "keywords:letter_frequency": _letter_frequency,
    "startend:end_checker": _ends_with,
    "startend:quotation": lambda text, kwargs: any(text.strip().startswith(start) and text.strip().endswith(end) for start, end in QUOTES),
    "punctuation:no_comma": lambda text, kwargs: "," not in text,
    "change_case:english_capital": _all_upper,
    "change_case:english_lowercase": _all_lower,
    "change_case:capital_word_frequency": lambda text, kwargs: compare(sum(token.isupper() and token.isalpha() and len(token) > 1 for token in text.split()), kwargs),
    "detectable_format:json_format": _json,
    "detectable_format:title": lambda text, kwargs: any(TITLE.fullmatch(line.strip()) for line in text.split("\n")),
    "detectable_format:multiple_sections": _multiple_sections,
    "detectable_format:number_highlighted_sections": lambda text, kwargs: at_least(_count(HIGHLIGHTS, text), kwargs),
    "combination:two_responses": _two_responses,
    # Their aliases, in no official data.
    "case:all_capital": _all_upper,
    "case:all_lowercase": _all_lower,
    "detectable_format:constrain_two_responses": _two_responses,
}


def loose_variants(text: str) -> list[str]:
    """Their eight loose variants, the "meaningless" ones dropped: the text, without its first line,
    its last line or both (the text itself when it has too few lines), each also without ``*``."""
    lines = text.split("\n")
    cuts = ["\n".join(kept).strip() if len(lines) > needed else None for kept, needed in ((lines[1:], 1), (lines[:-1], 1), (lines[1:-1], 2))]
    variants = [text, text.replace("*", ""), *(text if cut is None else cut for cut in cuts), *(text if cut is None else cut.replace("*", "") for cut in cuts)]
    return [variant for variant in variants if is_meaningful(variant)]


def follows(variants: list[str], instruction_id: str, kwargs: Any) -> bool:
    """Whether one variant passes the instruction's checker; the first that raises ends the search (not followed).

    kwargs are passed to their checkers as keyword arguments, so a non-dict, a non-text key or a key
    naming one of their parameters (``self``, ``response``) raised there.
    """
    checker = CHECKERS.get(instruction_id)
    if checker is None or not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs) or {"self", "response"} & set(kwargs):
        return False
    try:
        return any(variant.strip() and is_meaningful(variant) and checker(variant, kwargs) for variant in variants)
    except Exception:
        return False


def _mode_result(follow_instruction_list: list[bool], meaningful: bool) -> dict[str, Any]:
    """Their ``strict_evaluation`` / ``loose_evaluation`` dict, less its copies of the inputs (ids, prompt, response)."""
    return {
        "follow_all_instructions": meaningful and all(follow_instruction_list),
        "follow_instruction_list": follow_instruction_list,
        "num_instructions": len(follow_instruction_list),
        "num_followed": sum(follow_instruction_list),
        "meaningless_response": not meaningful,
    }


def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
    """Their verdicts on the stripped response, in their names and nesting: strict (as is) and loose (any
    variant); a "meaningless" response follows nothing. A missing kwargs entry reads as ``{}``."""
    text = response.strip()
    meaningful = is_meaningful(text)
    ids, kwargs = sample["instruction_id_list"], sample["kwargs"]
    arguments = [kwargs[index] if index < len(kwargs) else {} for index in range(len(ids))]
    variants = loose_variants(text) if meaningful else []
    strict = [meaningful and follows([text], instruction_id, entry) for instruction_id, entry in zip(ids, arguments)]
    loose = [meaningful and follows(variants, instruction_id, entry) for instruction_id, entry in zip(ids, arguments)]
    return {
        "is_meaningful_response": meaningful,
        "strict_evaluation": _mode_result(strict, meaningful),
        "loose_evaluation": _mode_result(loose, meaningful),
        "num_instructions": len(ids),
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names, read from each detail's ``instruction_id_list`` and ``reference`` block."""
    per_id: dict[str, dict[str, int]] = {}  # in order of first appearance, as theirs
    counts = {"strict_prompt_correct": 0, "loose_prompt_correct": 0, "strict_instruction_correct": 0, "loose_instruction_correct": 0}
    total_instructions = meaningless = 0
    for detail in details:
        verdict = detail["reference"]
        for mode in ("strict", "loose"):
            counts[f"{mode}_prompt_correct"] += verdict[f"{mode}_evaluation"]["follow_all_instructions"]
            counts[f"{mode}_instruction_correct"] += verdict[f"{mode}_evaluation"]["num_followed"]
        total_instructions += len(detail["instruction_id_list"])
        meaningless += not verdict["is_meaningful_response"]
        pairs = zip(detail["instruction_id_list"], verdict["strict_evaluation"]["follow_instruction_list"], verdict["loose_evaluation"]["follow_instruction_list"])
        for instruction_id, strict, loose in pairs:
            tally = per_id.setdefault(instruction_id, {"strict_correct": 0, "loose_correct": 0, "total": 0})
            tally["strict_correct"] += strict
            tally["loose_correct"] += loose
            tally["total"] += 1
    return {
        "strict_prompt_accuracy": share(counts["strict_prompt_correct"], len(details)),
        "loose_prompt_accuracy": share(counts["loose_prompt_correct"], len(details)),
        "strict_instruction_accuracy": share(counts["strict_instruction_correct"], total_instructions),
        "loose_instruction_accuracy": share(counts["loose_instruction_correct"], total_instructions),
        **counts,
        "total_prompts": len(details),
        "total_instructions": total_instructions,
        "meaningless_responses": meaningless,
        "meaningless_response_rate": share(meaningless, len(details)),
        "instruction_accuracies": {
            instruction_id: {"strict_accuracy": share(tally["strict_correct"], tally["total"]), "loose_accuracy": share(tally["loose_correct"], tally["total"]), **tally}
            for instruction_id, tally in per_id.items()
        },
    }
