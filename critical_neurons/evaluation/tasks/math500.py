"""MATH-500: the reference's zero-shot prompt, the last ``\\boxed{...}`` (nested braces) as the answer,
and ``math-verify`` equivalence, hard-bounded in time; accuracy over all problems.

The reference's boxed regex stopped at the first ``}`` (``\\boxed{\\frac{1}{2}}`` read as ``\\frac{1``),
its keyword fallbacks caught noise, and its sympy check had no timeout. Its scorer runs beside this
one (``reference`` blocks; :mod:`critical_neurons.evaluation.reference.math500`), its grading bounded in time too.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from multiprocessing.connection import Connection
from typing import Any

from math_verify import parse, verify

from critical_neurons.evaluation.data import TEXT, load_rows, require_fields
from critical_neurons.evaluation.reference import math500 as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, extraction_rate, group_accuracy, is_meaningful, mean, rate

logger = logging.getLogger(__name__)

HUB = "HuggingFaceH4/MATH-500"
DEFAULTS = TaskDefaults("math500", "accuracy", ("accuracy", "correct_count", "boxed_rate", "extraction_rate", "meaningful_response_rate"), max_length=2048, max_new_tokens=512, output_file="results/math500_results.json", reference_metric="reference.accuracy")
FIELDS = {"problem": TEXT, "answer": TEXT}
PROMPT = "Solve this math problem step by step:\n\n{problem}\n\nSolution:"
ANSWER_SOURCES = ("boxed", "answer_is", "last_number")

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")


def load_samples(source: str | None = None, split: str = "test") -> list[dict[str, Any]]:
    """Problems with their short gold answer; subject, level and id when the data has them."""
    rows = load_rows(source or HUB, split=split)
    require_fields(rows, FIELDS, source or HUB)
    return [
        {
            "unique_id": str(row.get("unique_id", index)),
            "problem": str(row["problem"]),
            "answer": str(row["answer"]),
            "subject": str(row.get("subject", "unknown")),
            "level": str(row.get("level", "unknown")),
        }
        for index, row in enumerate(rows)
    ]


def build_prompt(sample: dict[str, Any]) -> str:
    """The reference's prompt, verbatim (it never asks for ``\\boxed``)."""
    return PROMPT.format(problem=sample["problem"])


def _braced(text: str, start: int) -> str | None:
    """Content of the brace group opening at ``text[start]``; None if it never closes. ``\\{``/``\\}`` are literals."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index]
        index += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete, non-empty ``\\boxed{...}`` or ``\\fbox{...}`` (also ``\\boxed 5``).

    A box cut off by the token limit is skipped in favour of an earlier complete one.
    """
    for match in reversed(list(_BOX.finditer(text))):
        rest = text[match.end() :]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            content = _braced(text, match.end() + len(rest) - len(stripped))
        else:
            bare = re.match(r"\s+([^\s$]+)", rest)
            content = bare.group(1) if bare else None
        if content and content.strip():
            return content.strip()
    return None


def extract_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, source): the last box; without one, the last "the answer is X", then the last number."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed, "boxed"
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        sentence = re.split(r"\.\s", match.group(1))[0]  # up to the end of the sentence, not into the next
        answer = sentence.strip().rstrip(".").strip("$ ")
        if answer:
            return answer, "answer_is"
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", ""), "last_number"
    return None, None


def _verify_worker(connection: Connection, timeout: int) -> None:
    """Child loop: (judge, gold, answer) in, a verdict out. math-verify's own SIGALRM timeouts stay active.

    ``judge`` is ``math_verify`` (the corrected scorer) or ``reference`` (the authors' grader).
    """
    while True:
        try:
            judge, gold, answer = connection.recv()
        except EOFError:
            return
        try:
            if judge == "reference":
                verdict = "equivalent" if reference.grade_answer(answer, gold) else "different"
            else:
                gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
                answer_parsed = parse(f"\\boxed{{{answer}}}", parsing_timeout=timeout)
                if not gold_parsed or not answer_parsed:
                    verdict = "unparsed"
                else:
                    verdict = "equivalent" if verify(gold_parsed, answer_parsed, timeout_seconds=timeout) else "different"
        except Exception as error:  # math-verify swallows most errors; anything left is one sample's problem
            verdict = f"error: {type(error).__name__}"
        connection.send(verdict)


class BoundedVerifier:
    """``math-verify`` equivalence in a worker process that is killed when one comparison overruns.

    math-verify's timeouts use SIGALRM, whose handler runs only between Python bytecodes, so one
    long C-level step (a huge integer power or factorial inside sympy, a string conversion of a
    giant number) is not interrupted. The worker keeps those per-step timeouts (``timeout``
    seconds); the parent waits ``hard_timeout`` seconds (default ``3 * timeout + 2``: two parses
    and a comparison) for the verdict, then kills the worker (verdict ``timeout``) and starts a fresh one.
    """

    def __init__(self, timeout: int = 5, hard_timeout: float | None = None):
        self.timeout = timeout
        self.hard_timeout = 3 * timeout + 2 if hard_timeout is None else hard_timeout
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None

    def __enter__(self) -> BoundedVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        parent, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_verify_worker, args=(child, self.timeout), daemon=True)
        self._process.start()
        child.close()
        self._connection = parent

    def __call__(self, gold: str, answer: str, judge: str = "math_verify") -> str:
        """``equivalent``, ``different``, ``unparsed``, ``timeout`` or ``error: ...``.

        ``judge="reference"`` grades with the authors' sympy-based grader instead, which had no time
        limit of its own: an overrun is ``timeout`` (wrong) instead of a hung run.
        """
        if self._process is None or not self._process.is_alive():
            self._start()
        self._connection.send((judge, gold, answer))
        if self._connection.poll(self.hard_timeout):
            try:
                return self._connection.recv()
            except EOFError:
                self.close()
                return "error: verifier process died"
        logger.warning("math-verify overran %ss on %r; restarting it", self.hard_timeout, answer[:80])
        self.close()
        return "timeout"

    def close(self) -> None:
        """Stop the worker (it holds no state worth keeping)."""
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._connection.close()
            self._process = self._connection = None


def task(verifier: BoundedVerifier) -> GenerativeTask:
    """MATH scoring with the given verifier (the script owns it, so its worker is stopped at the end)."""

    def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
        answer, source = extract_answer(response)
        verdict = verifier(sample["answer"], answer) if answer is not None else "no answer"
        return {
            "unique_id": sample["unique_id"],
            "subject": sample["subject"],
            "level": sample["level"],
            "gold": sample["answer"],
            "extracted_answer": answer,
            "answer_source": source,
            "verdict": verdict,
            "is_correct": verdict == "equivalent",
            "is_meaningful": is_meaningful(response),
        }

    def reference_grade(answer: str, gold: str) -> bool | None:
        """The authors' grader in the worker; None when it overran (their sympy call had no time limit)."""
        verdict = verifier(gold, answer, judge="reference")
        return None if verdict == "timeout" else verdict == "equivalent"

    def reference_score(sample: dict[str, Any], response: str) -> dict[str, Any]:
        return reference.score(sample, response, grade=reference_grade)

    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference_score, reference_aggregate=reference.aggregate)


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over every problem (no answer is wrong), per subject and level, and where answers came from."""
    return {
        "accuracy": rate(details, "is_correct"),
        "correct_count": sum(detail["is_correct"] for detail in details),
        "extraction_rate": extraction_rate(details),
        "boxed_rate": mean(float(detail["answer_source"] == "boxed") for detail in details),
        "answer_sources": {source: sum((detail["answer_source"] or "none") == source for detail in details) for source in (*ANSWER_SOURCES, "none")},
        "verification_timeouts": sum(detail["verdict"] == "timeout" for detail in details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
        "subject_accuracies": group_accuracy(details, "subject"),
        "level_accuracies": group_accuracy(details, "level"),
    }


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail."""
    return {"unique_id": detail["unique_id"], "subject": detail["subject"], "level": detail["level"], "answer": detail["gold"]}
