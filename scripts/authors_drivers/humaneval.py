"""HumanEval: their ``HumanEvalEvaluator`` against ``critical_neurons.reference.humaneval``.

The problems are those of ``tests/fixtures/humaneval_subset.jsonl``. Their code runs their programs
unsandboxed in the working folder, so their level runs in a fresh temporary folder. Their failure
message (``error_msg``: the program's whole stderr, with its temporary file's path) has no stable
counterpart in our ``result`` (the last stderr line), so ``result`` is left out of the comparison.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text
from critical_neurons.tasks import humaneval

PROBLEMS = humaneval.load_samples(str(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "humaneval_subset.jsonl"))
PIECES = (
    "```", "```python", "```py", "```\n", "```python\n", "\n```", "def ", "def f(x):", ":", "\n", "\n", "\n\n", "    ", "  ", "\t", " ", "return ", "return x", "return 0", "pass",
    "x", "import math", "print(", ")", "(", "Here is the code", "Sure!", "class A:", "if __name__ == '__main__':", "@staticmethod", "# comment", "'''", '"""', "1", "=", ",",
    "\r\n", "\u2028", "é", "import sys\n", "print(__file__)\n", "sys.exit(1)\n", "raise SystemExit(0)\n",
)


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample)


def their_verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    return {"extracted_code": result["extracted_code"], "passed": result["passed"], "is_meaningful": result["is_meaningful_response"]}


def evaluate(evaluator: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Their ``evaluate_dataset``, in a temporary working folder their programs may write to."""
    with tempfile.TemporaryDirectory(prefix="authors-humaneval-") as folder, contextlib.chdir(folder):
        return evaluator.evaluate_dataset(rows)


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    problem = rng.choice(PROBLEMS)
    names = (f"def {problem['entry_point']}(", problem["entry_point"])
    return problem, random_text(rng, (*ALPHABET, *PIECES, *PIECES, *names, *names), 30)


DRIVER = Driver(module="humaneval_evaluator", evaluator_class="HumanEvalEvaluator", method=humaneval.DEFAULTS.name, their_row=their_row, their_verdict=their_verdict, fuzz=fuzz, evaluate=evaluate, ours_only=("result",))
