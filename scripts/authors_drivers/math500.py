"""MATH-500: their ``Math500Evaluator`` against ``critical_neurons.reference.math500``.

Their grader never times out; ours is bounded in time, and its timeouts (per sample and per level)
have no counterpart in theirs, so they are not compared.
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.tasks import math as math500

# Gold forms of MATH-500: fractions, tuples, text, complex numbers, radicals, intervals, infinities, mixed numbers, separators.
GOLDS = ("\\frac{14}{3}", "\\left( 3, \\frac{\\pi}{2} \\right)", "10", "p - q", "\\text{(C)}", "6 - 5i", "2\\sqrt{3}", "\\infty", "[-2,7]", "1,\\!000", "3\\frac{1}{2}", "x^2+1", "0.5", "\\dfrac{3}{4}", "90^\\circ", "\\$18.90")
PIECES = (
    "\\boxed{", "\\boxed {", "\\fbox{", "\\frac{", "}{", "\\dfrac{", "\\tfrac", "\\infty", "-\\infty", "\\pi", "\\sqrt{", "\\sqrt", "\\left(", "\\right)", "\\text{", "\\mbox{",
    "The answer is ", "the final answer is ", "Answer: ", "answer: ", "Therefore, ", "$$", "\\$", "^\\circ", "^{\\circ}", "\\!", "x=", "\\in", "[", "]", "i", "\\cup", "{", "0.5", ".", "%", "units",
)


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return {key: sample[key] for key in ("problem", "answer", "subject", "level", "unique_id")}


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("predicted_answer", "is_meaningful_response", "is_correct", "debug_info")}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    index = rng.randrange(len(GOLDS))
    sample = {"unique_id": f"test/fuzz/{index}.json", "problem": "Compute it.", "answer": GOLDS[index], "subject": ("Algebra", "Geometry")[index % 2], "level": "3"}
    return sample, random_text(rng, (*ALPHABET, *PIECES, GOLDS[index], GOLDS[index]))


DRIVER = Driver(
    module="math_evaluator", evaluator_class="Math500Evaluator", method=math500.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz, ours_only=("grading_timed_out", "grading_timeouts")
)
