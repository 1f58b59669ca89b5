"""HumanEval: their ``HumanEvalEvaluator`` against ``critical_neurons.evaluation.reference.humaneval``.

The problems are those of ``tests/fixtures/humaneval_subset.jsonl``. Their code runs their programs
unsandboxed in the working folder, so their level runs in a fresh temporary folder. A runtime
error's ``error_msg`` is the program's whole stderr for them, with their temporary file's path, and
its last line for us, so ``error_msg`` is left out of the comparison.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path
from typing import Any

from authors_drivers.common import ALPHABET, Driver, random_text, scoring_fields
from critical_neurons.evaluation.tasks import humaneval

PROBLEMS = humaneval.load_samples(str(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "humaneval_subset.jsonl"))
PIECES = (
    "```", "```python", "```py", "```\n", "```python\n", "\n```", "def ", "def f(x):", ":", "\n", "\n", "\n\n", "    ", "  ", "\t", " ", "return ", "return x", "return 0", "pass",
    "x", "import math", "print(", ")", "(", "Here is the code", "Sure!", "class A:", "if __name__ == '__main__':", "@staticmethod", "# comment", "'''", '"""', "1", "=", ",",
    "\r\n", "\u2028", "é", "import sys\n", "print(__file__)\n", "sys.exit(1)\n", "raise SystemExit(0)\n",
)


def their_row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample)


def evaluate(evaluator: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Their ``evaluate_dataset``, in a temporary working folder their programs may write to."""
    with tempfile.TemporaryDirectory(prefix="authors-humaneval-") as folder, contextlib.chdir(folder):
        return evaluator.evaluate_dataset(rows)


def fuzz(rng: random.Random) -> tuple[dict[str, Any], str]:
    problem = rng.choice(PROBLEMS)
    names = (f"def {problem['entry_point']}(", problem["entry_point"])
    return problem, random_text(rng, (*ALPHABET, *PIECES, *PIECES, *names, *names), 30)


DRIVER = Driver(module="humaneval_evaluator", evaluator_class="HumanEvalEvaluator", method=humaneval.DEFAULTS.name, their_row=their_row, their_verdict=scoring_fields("extracted_code", "is_meaningful_response", "passed"), fuzz=fuzz, evaluate=evaluate, not_compared=("error_msg",))
