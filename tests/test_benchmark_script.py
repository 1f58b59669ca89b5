"""benchmarks/benchmark.py: bad flags are one line before anything loads; a part that fails ends the run instead of hanging it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, assert_usage_error, run_script

SCRIPT = "benchmarks/benchmark.py"


@pytest.mark.parametrize("flags, flag", [(["--parts", "stage1,nope"], "--parts"), (["--compile", "sometimes"], "--compile"), (["--model_path", "missing"], "--model_path")])
def test_bad_input_is_one_line(tiny_model_path, tmp_path, flags, flag):
    output = tmp_path / "bench.json"
    arguments = {"--model_path": str(tiny_model_path("llama")), "--parts": "masking", "--output": str(output)}
    arguments.update(dict(zip(flags[::2], flags[1::2])))
    if flag == "--model_path":
        arguments["--model_path"] = str(tmp_path / "missing")
    result = run_script(SCRIPT, *[item for pair in arguments.items() for item in pair])
    assert_usage_error(result, flag, output)


def test_a_part_that_fails_ends_the_run_with_its_name(tiny_model_path, tmp_path):
    broken = tmp_path / "broken"  # a config without weights or tokenizer: the check passes, the part's load fails
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_path("llama") / "config.json").read_text())
    output = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / SCRIPT), "--model_path", str(broken), "--parts", "masking", "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)  # it used to wait for the part forever
    assert result.returncode != 0 and "the masking part ended without a result" in result.stderr
    assert not output.exists()
