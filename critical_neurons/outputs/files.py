"""JSON outputs: atomic, locked, always valid (what each kind holds is in :mod:`critical_neurons.outputs.formats`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from critical_neurons.errors import UsageError


def finite_or_none(value: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def current_umask() -> int:
    """The process umask (read without changing it for more than an instant)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str, flag: str = "--output_file") -> None:
    """Write ``text`` atomically: a temp file in the target's folder, then rename.

    A symlink is written through (its target is replaced, the link stays); the file gets the
    permissions the umask gives a new file (an existing file keeps its mode). An interrupted run or
    a full disk leaves the previous file intact; the disk error becomes one line naming ``flag``.
    """
    target = Path(os.path.realpath(Path(path).expanduser()))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~current_umask()
        handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    except OSError as error:
        raise UsageError(flag, f"cannot write {path} ({error.strerror})", "choose a writable path") from None
    try:
        with os.fdopen(handle, "w") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except OSError as error:
        Path(tmp_name).unlink(missing_ok=True)
        raise UsageError(flag, f"cannot write {path} ({error.strerror}); the previous file is unchanged", "free space or choose another path") from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, payload: Any, flag: str = "--output_file") -> None:
    """Write ``payload`` atomically as standard JSON: NaN/Inf become null (callers keep the log10
    value beside any number that can overflow)."""
    write_text(path, json.dumps(finite_or_none(payload), indent=2, allow_nan=False) + "\n", flag)


def existing_ancestor(path: Path) -> Path:
    """The nearest part of ``path`` that exists: where a new file or folder would be created."""
    while not path.exists():
        path = path.parent
    return path


def check_output_path(path: str, flag: str = "--output_file", inputs: Mapping[str, str | None] | None = None) -> Path:
    """Fail before any model loads when ``path`` cannot be this run's output; returns the file written.

    Refused: a folder, a device node or other non-regular file, a path equal to one of the run's
    ``inputs`` (flag -> path), a name too long for the file system, an unwritable place. A symlink
    is accepted and written through. Nothing is created here.
    """
    target = Path(os.path.realpath(Path(path).expanduser()))
    if len(target.name.encode()) > NAME_MAX:
        raise UsageError(flag, f"the file name is {len(target.name.encode())} bytes, more than the {NAME_MAX} a file system allows", "choose a shorter name")
    if target.is_dir():
        raise UsageError(flag, f"{path} is a folder", "give a file name such as results/out.json")
    if target.exists() and not target.is_file():
        raise UsageError(flag, f"{path} is not a regular file (a device, pipe or socket)", "give a file name such as results/out.json")
    for input_flag, input_path in (inputs or {}).items():
        if input_path and os.path.realpath(Path(input_path).expanduser()) == str(target):
            raise UsageError(flag, f"{path} is also the run's {input_flag}, which would be overwritten", "choose another output file")
    ancestor = existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UsageError(flag, f"cannot create a folder under {ancestor}, which is a file", "choose a writable path")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(flag, f"{path} is not writable", "choose a writable path")
    return target


class OutputFile:
    """One run's output file: checked before the model loads, locked for the whole run, written atomically."""

    def __init__(self, path: str, flag: str = "--output_file", inputs: Mapping[str, str | None] | None = None):
        self.given = path
        self.flag = flag
        self.path = check_output_path(path, flag, inputs)
        lock_name = f".{self.path.name}.lock"
        if len(lock_name.encode()) > NAME_MAX:
            lock_name = f".{hashlib.sha256(self.path.name.encode()).hexdigest()[:16]}.lock"
        self._lock = FileLock(self.path.parent / lock_name, timeout=0)

    def __enter__(self) -> OutputFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise UsageError(self.flag, f"another run is writing {self.given}", "wait for it to finish or choose another output file") from None
        except OSError as error:
            raise UsageError(self.flag, f"cannot lock {self.given} ({error.strerror})", "choose a writable path") from None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.release()

    def exists(self) -> bool:
        return self.path.is_file()

    def read_json(self) -> Any:
        return read_json(str(self.path), self.flag)

    def write_json(self, payload: Any) -> None:
        write_json(self.path, payload, self.flag)


def read_json(path: str, flag: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise UsageError(flag, f"{path} does not exist", "pass the JSON written by an earlier step") from None
    except IsADirectoryError:
        raise UsageError(flag, f"{path} is a folder", "pass a JSON file") from None
    except PermissionError:
        raise UsageError(flag, f"{path} is not readable", "check its permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(flag, f"{path} is not valid JSON ({error})", "regenerate the file") from None
    except RecursionError:
        raise UsageError(flag, f"{path} is nested too deeply to be a result file", "pass the JSON written by an earlier step") from None


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


RUNTIME_PACKAGES = ("torch", "transformers", "accelerate", "datasets")


def package_versions(names: tuple[str, ...] = RUNTIME_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (None where absent), with Python's under ``python``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
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
