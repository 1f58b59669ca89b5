"""Helpers the generative-evaluator tests share: a one-record neuron file and the bad-input check (SPEC section 14)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def neuron_file(folder: Path, layer: str = "model.layers.0.mlp.down_proj", channel: int = 3) -> Path:
    """A ranking file with one record, in the stage-1 format."""
    path = folder / "neurons.json"
    record = {"layer_name": layer, "batch_idx": 0, "seq_idx": 0, "hidden_idx": channel, "activation_diff": 1.0}
    path.write_text(json.dumps({"top_neurons": [record]}))
    return path


def assert_usage_error(result: subprocess.CompletedProcess, flag: str, output: Path) -> None:
    """Exit status 2, exactly one error line (the last) naming the flag, no traceback, no output file."""
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and flag in errors[0] and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not output.exists()
