"""The authors' MATH-500 scoring, re-implemented from their behaviour: extraction cascade and answer grading.

Extraction: an ordered list of patterns (case-insensitive, ``$`` at every line end); the first
pattern with a non-empty match wins and its last match is the answer. The first one,
``\\boxed{([^}]+)}``, stops at the first ``}``, so ``\\boxed{\\frac{1}{2}}`` reads as ``\\frac{1``.

Grading follows PRM800K's ``grade_answer`` ("Let's Verify Step by Step"), which the authors copied:
Hendrycks' string normalisation, then a second normalisation (LaTeX to text, units, mixed numbers),
then an element-wise comparison of tuples and intervals where exact fractions must match as strings
and everything else goes through ``sympy.simplify(gold - answer) == 0``. The authors ran sympy with no
time limit; here the caller bounds it (see :class:`critical_neurons.tasks.math.BoundedVerifier`).
Their LaTeX-to-text step is pylatexenc's, as theirs.
"""

from __future__ import annotations

import re

import sympy
from pylatexenc.latex2text import LatexNodes2Text
from sympy.parsing import sympy_parser

_FLAGS = re.IGNORECASE | re.MULTILINE
EXTRACTION_PATTERNS = (
    re.compile(r"\\boxed\{([^}]+)\}", _FLAGS),
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", _FLAGS),
    re.compile(r"(?:final answer|answer|solution|result|conclusion)\s*(?:is|:|\s)\s*([^.\n]+)", _FLAGS),
    re.compile(r"(?:therefore|thus|hence),?\s*(?:the answer is\s*)?([^.\n]+)", _FLAGS),
    re.compile(r"\$([^$]+)\$(?:\s*$|\.|,)", _FLAGS),
    re.compile(r"(-?\d+(?:\.\d+)?)\s*$", _FLAGS),
    re.compile(r"\\frac\{([^}]+)\}\{([^}]+)\}", _FLAGS),
    re.compile(r"(-?\d+(?:\.\d+)?(?:\s*[-+*/]\s*-?\d+(?:\.\d+)?)*)", _FLAGS),
)
_UNITS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year", "foot", "feet", "inch", "yard")
_TUPLE_CHARS = "()[]"
_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_SYMBOLS = {"√": "sqrt", "π": "pi", "∞": "inf", "∪": "U", "·": "*", "×": "*"}  # what pylatexenc writes for these macros


def extract_answer(text: str) -> str | None:
    """The authors' answer: the last match of the first pattern that has a non-empty one; None if none does."""
    for pattern in EXTRACTION_PATTERNS:
        matches = pattern.findall(text)
        if not matches:
            continue
        last = matches[-1]
        answer = f"\\frac{{{last[0]}}}{{{last[1]}}}" if isinstance(last, tuple) else last.strip()
        if answer:
            return answer
    return None


# Hendrycks' MATH normalisation (the first, string-level comparison).


def _fix_fracs(text: str) -> str:
    """``\\frac12`` and ``\\frac1{2}`` -> ``\\frac{1}{2}``."""
    head, *parts = text.split("\\frac")
    rebuilt = head
    for part in parts:
        rebuilt += "\\frac"
        if part.startswith("{"):
            rebuilt += part
            continue
        if len(part) < 2:
            return text
        numerator, denominator, rest = part[0], part[1], part[2:]
        rebuilt += f"{{{numerator}}}{{{denominator}}}{rest}" if denominator != "{" else f"{{{numerator}}}{denominator}{rest}"
    return rebuilt


def _fix_a_slash_b(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` when both sides are integers."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    return f"\\frac{{{numerator}}}{{{denominator}}}" if text == f"{numerator}/{denominator}" else text


def _fix_sqrt(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``."""
    head, *parts = text.split("\\sqrt")
    return head + "".join("\\sqrt" + (part if part.startswith("{") or not part else f"{{{part[0]}}}{part[1:]}") for part in parts)


def strip_string(text: str) -> str:
    """Hendrycks' ``_strip_string``: LaTeX spacing, units, degrees, percent and dollar signs removed, fractions canonical."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in text:
        text = text.split("\\text{ ")[0]
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text.startswith("."):
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _fix_fracs(_fix_sqrt(text).replace(" ", ""))
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)


def mathd_normalize(answer: str) -> str:
    """The first comparison's form: ``\\text{...}`` unwrapped, then :func:`strip_string`."""
    answer = answer.strip()
    wrapped = _TEXT_WRAPPED.search(answer)
    return strip_string(wrapped.group("text").strip() if wrapped else answer)


# The second normalisation and the sympy comparison.


def latex_to_text(text: str) -> str:
    """LaTeX math as plain text through pylatexenc, as PRM800K's grader did; its Unicode symbols spelled out."""
    text = LatexNodes2Text().latex_to_text(text.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac"))
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    return text.strip()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_int(value: float) -> bool:
    return abs(value - round(value)) <= 1e-7


def _strip_number_commas(text: str) -> str:
    """Commas of well-formed thousands ("1,000") removed, repeatedly."""
    pattern = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
    while True:
        changed = pattern.sub(r"\1\3\4", text)
        if changed == text:
            return text
        text = changed


def _str_is_int(text: str) -> bool:
    try:
        return _is_int(float(_strip_number_commas(text)))
    except ValueError:
        return False


def _is_frac(text: str) -> bool:
    return bool(re.search(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$", text))


def normalize(expr: str) -> str:
    """PRM800K's second normalisation: units and signs dropped, LaTeX as text, mixed numbers as sums, lower case."""
    wrapped = _TEXT_WRAPPED.search(expr)
    if wrapped:
        expr = wrapped.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "").replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _UNITS:
        expr = re.sub(rf"{unit}(es)?(s)? *(\^[0-9]+)?", "", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    if _is_float(expr) and _is_int(float(expr)):
        expr = str(round(float(expr)))
    if "\\" in expr:
        expr = latex_to_text(expr.replace("\\frac", " \\frac"))
    expr = re.sub(r"- *", "-", expr)
    expr = re.sub(r"([0-9]) +([0-9])", r"\1+\2", expr)  # a mixed number "7 3/4" is 7+3/4
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(expr):
        expr = str(int(float(_strip_number_commas(expr))))
    return expr


def _split_tuple(expr: str) -> list[str]:
    """Elements of "(a,b)" / "[a,b)" (no nested brackets), else the expression alone."""
    expr = _strip_number_commas(expr)
    if not expr:
        return []
    if len(expr) > 2 and expr[0] in _TUPLE_CHARS and expr[-1] in _TUPLE_CHARS and not any(char in expr[1:-1] for char in _TUPLE_CHARS):
        return [element.strip() for element in expr[1:-1].split(",")]
    return [expr]


def _sympy_allowed(expr: str) -> bool:
    """The authors' guard: at most two distinct letters (sqrt/frac aside) and no large powers."""
    letters = {char for char in expr.replace("sqrt", "").replace("frac", "") if char.isalpha()}
    if len(letters) > 2 or "^{" in expr or "^(" in expr:
        return False
    return not (re.search(r"\^[0-9]+\^", expr) or re.search(r"\^[0-9][0-9]+", expr))


def _equal_under_sympy(gold: str, answer: str) -> bool:
    expr = f"({gold})-({answer})"
    if not _sympy_allowed(expr):
        return False
    try:
        transformations = (*sympy_parser.standard_transformations, sympy_parser.implicit_multiplication_application)
        difference = sympy_parser.parse_expr(expr.replace("^", "**"), transformations=transformations)
        return sympy.simplify(difference) == 0
    except Exception:  # a parse or simplify error is "not equal", as for the authors
        return False


def grade_answer(answer: str | None, gold: str) -> bool:
    """PRM800K's ``grade_answer``: string forms first, then element-wise (fractions as strings, integers vs not, sympy)."""
    if answer is None:
        return False
    if mathd_normalize(gold) == mathd_normalize(answer):
        return True
    gold_normalized, answer_normalized = normalize(gold), normalize(answer)
    if gold_normalized == answer_normalized:
        return True
    if not answer_normalized:
        return False
    gold_elements, answer_elements = _split_tuple(gold_normalized), _split_tuple(answer_normalized)
    if len(gold_elements) > 1 and (gold_normalized[0] != answer_normalized[0] or gold_normalized[-1] != answer_normalized[-1]):
        return False
    if len(gold_elements) != len(answer_elements):
        return False
    for gold_element, answer_element in zip(gold_elements, answer_elements):
        if _is_frac(gold_element) and _is_frac(answer_element):
            correct = gold_element == answer_element
        elif _str_is_int(gold_element) != _str_is_int(answer_element):
            correct = False
        else:
            correct = _equal_under_sympy(gold_element, answer_element)
        if not correct:
            return False
    return True
