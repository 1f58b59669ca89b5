"""A wheel built from the project holds every module and runs the pipeline without the checkout (SPEC 21).

The wheel is built as ``pip wheel .`` builds it and unpacked into a fresh virtualenv that sees this
environment's third-party packages (torch, transformers, ...) but neither the checkout nor its
editable install; the scripts then run from another folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT, SHORT_BOOKENDS_TEXT

from critical_neurons.reporting.results import read_result


def build_wheel(folder: Path) -> Path:
    """The project's wheel, built by pip and the project's build backend from a copy of the checkout's
    package and ``pyproject.toml`` (so no build folder lands in the checkout)."""
    source = folder / "source"
    shutil.copytree(ROOT / "critical_neurons", source / "critical_neurons", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(folder / "dist"), str(source)], check=True)
    (wheel,) = (folder / "dist").glob("critical_neurons-*.whl")
    return wheel


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtualenv holding the unpacked wheel, with this environment's site-packages appended to its
    path as plain folders (their ``.pth`` files, the editable install's among them, stay unprocessed)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True, check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as archive:  # a pure wheel installs by unpacking into purelib
        archive.extractall(purelib)
    (purelib / "dev_environment.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    return python


def test_wheel_holds_every_module_and_runs_the_pipeline_without_the_checkout(tmp_path, tiny_model_path):
    checkout = set(os.listdir(ROOT))
    wheel = build_wheel(tmp_path)
    assert set(os.listdir(ROOT)) == checkout, "building the wheel left files (build/, *.egg-info) in the checkout"
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "critical_neurons").rglob("*.py")}
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.endswith(".py")}
    assert modules <= packed, f"left out of the wheel: {sorted(modules - packed)}"

    python = fresh_environment(tmp_path / "venv", wheel)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    bytecode = tmp_path / "bytecode"  # every module imported leaves its .pyc here, under its source path
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
    env.update(PYTHONPYCACHEPREFIX=str(bytecode), TOKENIZERS_PARALLELISM="false")

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(python), str(ROOT / script), *args], capture_output=True, text=True, cwd=outside, env=env)
        assert result.returncode == 0, f"{script}: {result.stderr[-3000:]}"
        return result

    assert "--masking_levels" in run("evaluation/mmlu_pro_evaluator.py", "--help").stdout
    model = tiny_model_path("llama")
    ranking, critical = outside / "ranking.json", outside / "critical.json"
    run("method/1_importance_evaluation.py", "--model_path", str(model), "--input_text", SHORT_BOOKENDS_TEXT, "--num_samples", "4", "--top_n", "50", "--output_file", str(ranking))
    run("method/2_neuron_identification.py", "--model_path", str(model), "--neuron_file", str(ranking), "--test_text", SHORT_BOOKENDS_TEXT, "--max_steps", "5", "--output_file", str(critical))

    assert read_result(ranking).kind == "ranking" and len(json.loads(ranking.read_text())["top_neurons"]) == 50
    assert read_result(critical).kind == "critical_set"
    imported = [path for path in bytecode.rglob("*.pyc") if "critical_neurons" in path.parts]
    installed = str(tmp_path / "venv")
    assert any(path.stem.startswith("stage2.") for path in imported), "Stage 2's core was not imported"
    assert all(str(path.relative_to(bytecode)).startswith(installed.lstrip("/")) for path in imported), "a module came from outside the installed wheel"
