"""HumanEval as the authors scored it: their code cut from the response, run as a script with the test
definitions (``check`` is never called); passed when the script exits with status 0 within the timeout.

Their cut, on the stripped response: the first match of each of four fence patterns, in order, if its
stripped body contains ``def ``; else every line from the first one holding ``def `` and ``:``, while
lines hold both again, are blank or are indented (the first other line ends it); else the whole text
if it contains ``def ``. A plain completion (a function body) therefore yields no code, and a
"meaningless" response is never run. A level with no problem scores 0.0.

Their run, reproduced inside the project's sandboxed runner: the program written to a temporary
``.py`` file and started as ``python FILE`` with captured output and the timeout, so ``__file__``,
``sys.argv`` and ``sys.path[0]`` are a temporary file's, and a descendant holding the output pipes
open makes it time out. What the sandbox changes (the working folder, the environment, a memory cap)
is listed in the README.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from critical_neurons.evaluation.reference.common import is_meaningful, share

# (child source, job, timeout) -> (stdout, stderr, exit status), or None when the child overran.
ChildRunner = Callable[[str, dict[str, Any], float], "tuple[str, str, int] | None"]

FENCES = tuple(re.compile(pattern, re.DOTALL) for pattern in (r"```python\n(.*?)\n```", r"```\n(.*?)\n```", r"```python(.*?)```", r"```(.*?)```"))

# Runs in the sandboxed interpreter: the limits, then their ``_execute_code_safely`` as they ran it.
# Exit status 0 means passed; otherwise the last stderr line is their message (a runtime error's last line only).
SCRIPT_CHILD = """
import json, resource, subprocess, sys, tempfile
job = json.load(sys.stdin)
limit = job["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
    script.write(job["program"])
try:
    done = subprocess.run([sys.executable, script.name], capture_output=True, text=True, timeout=job["timeout"])
except subprocess.TimeoutExpired:
    sys.exit("Timeout")
except Exception as error:  # theirs: any other error of the run (output that is not UTF-8) fails
    sys.exit(f"Execution error: {error}")
if done.returncode != 0:
    errors = done.stderr.strip().splitlines()
    sys.exit("Runtime error: " + (errors[-1][:200] if errors else ""))
"""


def extract_code(response: str) -> str:
    """Their code from a (stripped) response; "" when they found none."""
    for fence in FENCES:
        match = fence.search(response)
        code = match.group(1).strip() if match else ""
        if "def " in code:
            return code
    lines = response.split("\n")
    start = next((index for index, line in enumerate(lines) if "def " in line and ":" in line), None)
    if start is not None:
        end = start + 1
        while end < len(lines) and (("def " in lines[end] and ":" in lines[end]) or not lines[end].strip() or lines[end].startswith(("    ", "\t"))):
            end += 1
        return "\n".join(lines[start:end])
    return response if "def " in response else ""


def run_script(code: str, test: str, run_child: ChildRunner, timeout: float, memory_mb: int) -> dict[str, Any]:
    """Their execution of ``code``, a blank line and ``test``: passed iff the script exits with 0, with their message."""
    job = {"program": f"{code}\n\n{test}", "timeout": timeout, "memory_bytes": memory_mb * 2**20}
    finished = run_child(SCRIPT_CHILD, job, timeout)
    if finished is None:
        return {"passed": False, "error_msg": "Timeout"}
    _, errors, returncode = finished
    if returncode == 0:
        return {"passed": True, "error_msg": "Success"}
    reason = errors.strip().splitlines()[-1] if errors.strip() else ""
    if reason.startswith(("Runtime error: ", "Execution error: ", "Timeout")):
        return {"passed": False, "error_msg": reason}
    return {"passed": False, "error_msg": f"Execution error: runner error ({reason[:200] or f'exit status {returncode}'})"}


def score(sample: dict[str, Any], response: str, run_child: ChildRunner, timeout: float = 5.0, memory_mb: int = 4096) -> dict[str, Any]:
    """Their verdict in their names: the code runs only when there is some, the response is "meaningful"
    and the problem has tests; ``error_msg`` is their message (a runtime error's last stderr line only)."""
    text = response.strip()
    code = extract_code(text)
    meaningful = is_meaningful(text)
    if not meaningful:
        outcome = {"passed": False, "error_msg": "Response not meaningful"}
    elif not code:
        outcome = {"passed": False, "error_msg": "No code extracted"}
    elif not sample["test"]:
        outcome = {"passed": False, "error_msg": "No test code provided"}
    else:
        outcome = run_script(code, sample["test"], run_child, timeout, memory_mb)
    return {"extracted_code": code, "is_meaningful_response": meaningful, **outcome}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Their level metrics and names: pass rate over all problems, meaningless and extraction counts."""
    verdicts = [detail["reference"] for detail in details]
    passed = sum(verdict["passed"] for verdict in verdicts)
    meaningless = sum(not verdict["is_meaningful_response"] for verdict in verdicts)
    extracted = sum(bool(verdict["extracted_code"]) for verdict in verdicts)
    return {
        "pass_rate": share(passed, len(verdicts)),
        "passed_count": passed,
        "total_samples": len(verdicts),
        "meaningless_responses": meaningless,
        "meaningless_response_rate": share(meaningless, len(verdicts)),
        "code_extracted_count": extracted,
        "code_extraction_rate": share(extracted, len(verdicts)),
    }
