"""MATH-500: their ``Math500Evaluator`` against ``critical_neurons.evaluation.reference.math500``.

Their grader never times out; ours is bounded in time, and its timeouts (per sample and per level)
have no counterpart in theirs, so they are not compared.
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.evaluation.tasks import math500

# Gold forms of MATH-500: integers, negatives, decimals, fractions (\frac, \dfrac, a/b), radicals, tuples, intervals, unions,
# infinities, degrees, dollars, percents, thousands, text and letter answers, complex numbers, matrices, equations, mixed numbers.
GOLDS = (
    "10", "-2", "0", "26000", "0.5", ".25", "3.14", "\\frac{14}{3}", "-\\frac{1}{3}", "\\dfrac{3}{4}", "\\tfrac{1}{2}", "\\frac12", "3/4",
    "2\\sqrt{3}", "11\\sqrt2", "\\sqrt[3]{4}", "\\frac{1+\\sqrt{5}}{2}", "\\left( 3, \\frac{\\pi}{2} \\right)", "(1,2)", "1, -2",
    "[-2,7]", "(-\\infty, 3) \\cup (5, \\infty)", "\\infty", "90^\\circ", "30^{\\circ}", "\\$18.90", "10\\%", "1,\\!000", "1,000,000",
    "\\text{(C)}", "(C)", "\\text{Evelyn}", "\\text{even}", "E", "p - q", "x^2+7x+10", "6 - 5i", "\\pi", "3\\pi", "\\frac{\\pi}{4}",
    "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "y = -2x + 3", "x=5", "4 \\text{ inches}", "5\\text{ cm}", "50\\text{ million}",
    "2^{10}", "10^{6}", "3\\frac{1}{2}", "3 \\dfrac{1}{4}", "\\{1,2\\}", "\\frac{3x}{4}", "1e5", "5.",
)
PIECES = (
    "\\boxed{", "\\boxed {", "\\boxed{}", "\\BOXED{", "\\fbox{", "\\frac{", "}{", "\\frac", "\\dfrac{", "\\tfrac", "\\infty", "-\\infty",
    "\\pi", "\\sqrt{", "\\sqrt", "\\left(", "\\right)", "\\text{", "\\text{ ", "\\mbox{", "The answer is ", "the final answer is ",
    "Answer: ", "answer: ", "solution", "The result is ", "conclusion", "Therefore, ", "thus ", "Hence ", "$$", "\\$", "^\\circ",
    "^{\\circ}", "\\!", ",\\!", "\\%", "x=", "\\in", "[", "]", "i", "\\cup", "{", "0.5", ".", "%", "^", "units", " and ", " or ",
    "million", "cm", "degrees", "5.", "1e5", "2E-3", "inf", "NaN", "7 3/4", "1,000", "------", "\u2028", "\x85", "π", "√", "∞", "٣",
)
# The gold or a near miss, in the phrasings the cascade looks for, so the grader sees equal and unequal answers.
WRAPPERS = ("\\boxed{%s}", "$%s$.", "The answer is %s", "Therefore, %s.", "%s", "\\boxed %s", "answer: $%s$", "result: %s\n")


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return {key: sample[key] for key in ("problem", "answer", "subject", "level", "unique_id")}


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("predicted_answer", "is_meaningful_response", "is_correct", "debug_info")}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    index = rng.randrange(len(GOLDS))
    gold = GOLDS[index]
    sample = {"unique_id": f"test/fuzz/{index}.json", "problem": "Compute it.", "answer": gold, "subject": ("Algebra", "Geometry", "Precalculus")[index % 3], "level": "3"}
    text = random_text(rng, (*ALPHABET, *PIECES, gold))
    if rng.random() < 0.4:
        variant = rng.choice((gold, gold.replace(" ", ""), gold.replace("\\dfrac", "\\frac"), gold.upper(), f"{gold}0", f"-{gold}", f"\\text{{{gold}}}"))
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(WRAPPERS) % variant + text[cut:]
    return sample, text


DRIVER = Driver(
    module="math_evaluator", evaluator_class="Math500Evaluator", method=math500.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz, not_compared=("grading_timed_out", "grading_timeouts")
)
