"""The authors' MATH-500 scoring (their ``investigation/math_evaluator.py``), reproduced output for output.

The response is stripped (their generation returned ``response.strip()``). Extraction is an ordered
list of patterns (case-insensitive, ``$`` at every line end); the first pattern with a match
decides, its last match is the answer, and an all-blank match moves on to the next pattern. The
first pattern, ``\\boxed{([^}]+)}``, stops at the first ``}``: ``\\boxed{\\frac{1}{2}}`` reads as
``\\frac{1``. Their line-scan fallback after the patterns can never find anything the patterns missed,
so an answer-less response gives "".

Grading is PRM800K's ``grade_answer`` as they copied it: Hendrycks' string normalisation (which
gives up and keeps the stripped answer on a second ``\\text{ ``, a trailing ``\\sqrt`` or an empty
``\\frac`` part), then a second normalisation (LaTeX to text with pylatexenc, units, mixed numbers,
lower case), then an element-wise comparison of tuples and intervals where fractions must match as
strings and everything else goes through ``sympy.simplify(gold - answer) == 0``, any error there
being "not equal". They graded only a "meaningful" response with a non-empty gold. Their sympy call
had no time limit; :func:`score` takes the grader, so a caller can bound it in time.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

import sympy
from pylatexenc.latex2text import LatexNodes2Text
from sympy.parsing import sympy_parser

from critical_neurons.evaluation.reference.common import is_meaningful, share

_FLAGS = re.IGNORECASE | re.MULTILINE
EXTRACTION_PATTERNS = tuple(
    re.compile(pattern, _FLAGS)
    for pattern in (
        r"\\boxed\{([^}]+)\}",
        r"\\boxed\{([^}]*(?:\{[^}]*\}[^}]*)*)\}",
        r"(?:final answer|answer|solution|result|conclusion)(?:\s*is\s*|\s*:\s*|\s+)([^.\n]+)",
        r"(?:therefore|thus|hence)(?:\s*,?\s*)(?:the answer is\s*)?([^.\n]+)",
        r"\$([^$]+)\$(?:\s*$|\s*\.|\s*,)",
        r"([+-]?\d+(?:\.\d+)?(?:/\d+)?)\s*$",
        r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$",  # decides only for a number ending in ".": "5.", and "1e5." reads "5."
        r"\\frac\{([^}]+)\}\{([^}]+)\}",  # rebuilt as \frac{a}{b}
        r"([+-]?\d+(?:\.\d+)?(?:/\d+)?(?:\s*[+\-*/]\s*\d+(?:\.\d+)?)*)",
    )
)
FAILURES_KEPT = 10  # their level result listed only the first ten extraction and grading failures
_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_UNITS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year", "foot", "feet", "inch", "yard")
_SYMBOL_WORDS = (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*"))  # pylatexenc's output for these macros
_TUPLE_CHARS = "()[]"
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+\.?/0*[1-9][0-9]*\.?$")
logging.getLogger("pylatexenc").setLevel(logging.ERROR)  # it warns on every malformed \frac, common in a masked model's answers
_SYMPY_TRANSFORMATIONS = (*sympy_parser.standard_transformations, sympy_parser.implicit_multiplication_application)


def extract_answer(response: str) -> str:
    """Their ``predicted_answer`` for an already stripped response; "" when no pattern matches."""
    for pattern in EXTRACTION_PATTERNS:
        matches = pattern.findall(response)
        if not matches:
            continue
        last = matches[-1]
        answer = f"\\frac{{{last[0]}}}{{{last[1]}}}" if isinstance(last, tuple) else last.strip()
        if answer:
            return answer
    return ""


# Hendrycks' MATH normalisation (the first, string-level comparison).


class _Unnormalizable(Exception):
    """Where their ``_strip_string`` raised, so the basic form is the answer merely stripped."""


def _braced_sqrt_arguments(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``; nothing after a ``\\sqrt`` is unnormalizable."""
    head, *parts = text.split("\\sqrt")
    for part in parts:
        if not part:
            raise _Unnormalizable
        head += "\\sqrt" + (part if part[0] == "{" else f"{{{part[0]}}}{part[1:]}")
    return head


def _braced_fractions(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{2}`` -> ``\\frac{1}{2}``; a one-character ``\\frac3`` leaves the text as it was."""
    head, *parts = text.split("\\frac")
    for part in parts:
        if not part:
            raise _Unnormalizable
        if part[0] == "{":
            head += "\\frac" + part
        elif len(part) < 2:
            return text
        elif part[1] == "{":
            head += f"\\frac{{{part[0]}}}{part[1:]}"
        else:
            head += f"\\frac{{{part[0]}}}{{{part[1]}}}{part[2:]}"
    return head


def _slash_as_fraction(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` when both sides are plain integers (written as Python writes them)."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    return f"\\frac{{{numerator}}}{{{denominator}}}" if text == f"{numerator}/{denominator}" else text


def _strip_string(text: str) -> str:
    """Hendrycks' ``_strip_string``: LaTeX spacing, degrees, dollars, percent and ``\\text{ `` units removed, fractions canonical."""
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        text = text.replace(old, new)
    if "\\text{ " in text:
        before, *after = text.split("\\text{ ")
        if len(after) != 1:
            raise _Unnormalizable
        text = before
    text = text.replace("\\%", "").replace("\\%", "")  # twice, as theirs: "\\%%" loses both
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _braced_fractions(_braced_sqrt_arguments(text).replace(" ", ""))
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_as_fraction(text)


def basic_normalize(answer: str) -> str:
    """Their ``normalize_answer_basic``: stripped, ``\\text{...}`` unwrapped, then Hendrycks' form (or just that, where it failed)."""
    answer = answer.strip()
    wrapped = _TEXT_WRAPPED.search(answer)
    if wrapped:
        answer = wrapped.group("text").strip()
    try:
        return _strip_string(answer)
    except _Unnormalizable:
        return answer


# The second normalisation and the sympy comparison.


def _latex_to_text(text: str) -> str:
    """LaTeX as plain text through pylatexenc, its Unicode symbols spelled out."""
    text = text.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    text = LatexNodes2Text().latex_to_text(text)
    for symbol, word in _SYMBOL_WORDS:
        text = text.replace(symbol, word)
    return text.strip()


def _whole_number(value: float) -> int | None:
    """The integer within 1e-7 of ``value``; None for a non-integer, an infinity or NaN."""
    try:
        nearest = round(value)
    except (OverflowError, ValueError):
        return None
    return nearest if abs(value - nearest) <= 1e-7 else None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _strip_thousands_commas(text: str) -> str:
    """Commas of well-formed thousands ("1,000") removed, repeatedly; tuple commas stay."""
    while True:
        stripped = _THOUSANDS_COMMA.sub(r"\1\3\4", text)
        if stripped == text:
            return text
        text = stripped


def _is_integer_text(text: str) -> bool:
    value = _float(_strip_thousands_commas(text))
    return value is not None and _whole_number(value) is not None


def advanced_normalize(expr: str) -> str:
    """Their ``_normalize_advanced``: units and signs dropped, LaTeX as text, mixed numbers as sums, lower case, integers canonical."""
    wrapped = _TEXT_WRAPPED.search(expr)
    if wrapped:
        expr = wrapped.group("text")
    for old, new in (("\\%", "%"), ("\\$", "$"), ("$", ""), ("%", ""), (" or ", " , "), (" and ", " , "), ("million", "*10^6"), ("billion", "*10^9"), ("trillion", "*10^12")):
        expr = expr.replace(old, new)
    for unit in _UNITS:
        expr = re.sub(f"{unit}(es)?(s)? *(\\^[0-9]+)?", "", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if expr[:1] == "{" and expr[-1:] == "}":
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    value = _float(expr)
    whole = None if value is None else _whole_number(value)
    if whole is not None:
        expr = str(whole)
    if "\\" in expr:
        with contextlib.suppress(Exception):  # a pylatexenc failure leaves the text as it was, as theirs
            expr = _latex_to_text(expr)
    expr = re.sub(r"- *", "-", expr)
    expr = re.sub(r"([0-9]) +([0-9])", r"\1+\2", expr)  # a mixed number "7 3/4" is 7+3/4
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _is_integer_text(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def _tuple_elements(expr: str) -> list[str]:
    """Elements of "(a,b)" / "[a,b)" (no nested brackets), else the expression alone; none for ""."""
    expr = _strip_thousands_commas(expr)
    if not expr:
        return []
    if len(expr) > 2 and expr[0] in _TUPLE_CHARS and expr[-1] in _TUPLE_CHARS and not any(char in expr[1:-1] for char in _TUPLE_CHARS):
        return [element.strip() for element in expr[1:-1].split(",")]
    return [expr]


def _sympy_allowed(expr: str) -> bool:
    """Their guard before sympy: at most two distinct letters (sqrt/frac aside), no braced or large powers."""
    letters = {char for char in expr.replace("sqrt", "").replace("frac", "") if char.isalpha()}
    if len(letters) > 2 or "^{" in expr or "^(" in expr:
        return False
    return not (re.search(r"\^[0-9]+\^", expr) or re.search(r"\^[0-9][0-9]+", expr))


def _equal_under_sympy(gold: str, answer: str) -> bool:
    expr = f"({gold})-({answer})"
    if not _sympy_allowed(expr):
        return False
    try:
        difference = sympy_parser.parse_expr(expr.replace("^", "**"), transformations=_SYMPY_TRANSFORMATIONS)
        return bool(sympy.simplify(difference) == 0)
    except Exception:  # a parse or simplify error is "not equal", as theirs
        return False


def grade_answer(answer: str, gold: str) -> bool:
    """PRM800K's ``grade_answer``: basic forms, then advanced forms, then element-wise (fractions as strings, integer vs not, sympy)."""
    if basic_normalize(gold) == basic_normalize(answer):
        return True
    gold_normalized, answer_normalized = advanced_normalize(gold), advanced_normalize(answer)
    if gold_normalized == answer_normalized:
        return True
    if not answer_normalized:
        return False
    gold_elements, answer_elements = _tuple_elements(gold_normalized), _tuple_elements(answer_normalized)
    if len(gold_elements) > 1 and (gold_normalized[0] != answer_normalized[0] or gold_normalized[-1] != answer_normalized[-1]):
        return False
    if len(gold_elements) != len(answer_elements):
        return False
    for gold_element, answer_element in zip(gold_elements, answer_elements):
        if _FRACTION.search(gold_element) and _FRACTION.search(answer_element):
            correct = gold_element == answer_element
        elif _is_integer_text(gold_element) != _is_integer_text(answer_element):
            correct = False
        else:
            correct = _equal_under_sympy(gold_element, answer_element)
        if not correct:
            return False
    return True


def score(sample: dict[str, Any], response: str, grade: Callable[[str, str], bool | None] = grade_answer) -> dict[str, Any]:
    """Their per-sample verdict, extraction, gate and normalised forms (``debug_info``).

    ``grade(answer, gold)`` is :func:`grade_answer` or a time-bounded run of it that returns None
    when it overran (wrong, and ``grading_timed_out``, which is ours).
    """
    response = response.strip()
    gold = sample["answer"]
    answer = extract_answer(response)
    meaningful = is_meaningful(response)
    verdict = grade(answer, gold) if answer and gold and meaningful else False
    return {
        "predicted_answer": answer,
        "is_meaningful_response": meaningful,
        "is_correct": bool(verdict),
        "grading_timed_out": verdict is None,
        "debug_info": {
            "predicted_answer_raw": answer,
            "ground_truth_raw": gold,
            "predicted_normalized_basic": basic_normalize(answer) if answer else None,
            "ground_truth_normalized_basic": basic_normalize(gold) if gold else None,
            "predicted_normalized_advanced": advanced_normalize(answer) if answer else None,
            "ground_truth_normalized_advanced": advanced_normalize(gold) if gold else None,
        },
    }


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level result (less ``neurons_masked`` and ``detailed_results``, kept beside it) and our ``grading_timeouts``.

    Each detail holds ``response``, ``gold``, ``subject`` and its ``reference`` block. MATH-500 rows
    have no ``id`` or ``problem_id``, so their ``problem_id`` is always "".
    """
    extraction_failures, grading_failures = [], []
    subjects: dict[str, list[bool]] = {}
    for detail in details:
        reference = detail["reference"]
        if not reference["is_correct"] and reference["is_meaningful_response"]:
            if reference["predicted_answer"]:
                grading_failures.append({"problem_id": "", "predicted": reference["predicted_answer"], "ground_truth": detail["gold"], "debug_info": reference["debug_info"]})
            else:
                response = detail["response"].strip()
                extraction_failures.append({"problem_id": "", "response": response[:200] + "..." if len(response) > 200 else response})
        subjects.setdefault(detail["subject"], []).append(reference["is_correct"])
    total = len(details)
    correct = sum(detail["reference"]["is_correct"] for detail in details)
    meaningless = sum(not detail["reference"]["is_meaningful_response"] for detail in details)
    extracted = sum(bool(detail["reference"]["predicted_answer"]) for detail in details)
    return {
        "accuracy": share(correct, total),
        "correct_count": correct,
        "total_samples": total,
        "meaningless_responses": meaningless,
        "meaningless_response_rate": share(meaningless, total),
        "answer_extracted_count": extracted,
        "answer_extraction_rate": share(extracted, total),
        "subject_accuracies": {subject: {"accuracy": share(sum(flags), len(flags)), "correct": sum(flags), "total": len(flags)} for subject, flags in subjects.items()},
        "extraction_failures": extraction_failures[:FAILURES_KEPT],
        "grading_failures": grading_failures[:FAILURES_KEPT],
        "grading_timeouts": sum(detail["reference"]["grading_timed_out"] for detail in details),
    }
