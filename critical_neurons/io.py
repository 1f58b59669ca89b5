"""JSON outputs (atomic, always valid) and neuron-file reading."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from critical_neurons.errors import UsageError
from critical_neurons.records import NeuronRecord

NEURON_LIST_KEYS = ("top_neurons", "neurons", "final_masked_neurons")


def finite_or_none(value: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically: a temp file in the same folder, then rename.

    An interrupted run leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as tmp:
            tmp.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` atomically as standard JSON: NaN/Inf become null (callers keep the log10
    value beside any number that can overflow)."""
    write_text(path, json.dumps(finite_or_none(payload), indent=2, allow_nan=False) + "\n")


def check_output_path(path: str, flag: str = "--output_file") -> Path:
    """Fail before any long computation when the output cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(flag, f"{path} is a folder", "give a file name such as results/out.json")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(flag, f"cannot create folder {parent} ({error.strerror})", "choose a writable path") from None
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(flag, f"{path} is not writable", "choose a writable path")
    return target


def read_json(path: str, flag: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise UsageError(flag, f"{path} does not exist", "pass the JSON written by an earlier step") from None
    except IsADirectoryError:
        raise UsageError(flag, f"{path} is a folder", "pass a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(flag, f"{path} is not valid JSON ({error})", "regenerate the file") from None


def load_neuron_records(path: str, flag: str = "--neuron_file") -> list[NeuronRecord]:
    """Records from a ranking file (``top_neurons``/``neurons``) or a stage-2 result (``final_masked_neurons``).

    An empty list or malformed records is an error: the reference silently masked nothing.
    """
    payload = read_json(path, flag)
    if not isinstance(payload, dict):
        raise UsageError(flag, f"{path} holds no neuron list", "pass a ranking file or a stage-2 result")
    key = next((key for key in NEURON_LIST_KEYS if isinstance(payload.get(key), list)), None)
    if key is None:
        raise UsageError(flag, f"{path} has none of the keys {', '.join(NEURON_LIST_KEYS)}", "pass a ranking file or a stage-2 result")
    entries = payload[key]
    if not entries:
        raise UsageError(flag, f"{path} has an empty '{key}' list", "rerun the step that wrote it")
    try:
        return [NeuronRecord.from_dict(entry) for entry in entries]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(
            flag, f"{path} has malformed records in '{key}' (each needs layer_name and an integer hidden_idx)", "regenerate the file"
        ) from None


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "datasets"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_metadata(arguments: dict[str, Any], started: float, **extra: Any) -> dict[str, Any]:
    """The block every output carries: how it was made."""
    return {
        "arguments": arguments,
        "command": " ".join(sys.argv),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "wall_time_s": round(time.time() - started, 3),
        **extra,
    }
