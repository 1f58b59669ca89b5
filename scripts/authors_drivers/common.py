"""Drive the authors' own evaluator classes with canned responses, for ``scripts/compare_with_authors.py``.

Their module is imported from a checkout (``--authors_repo``), never copied: only what loading needs
is stubbed (``modelscope``, absent here; their dataset loaders are never called). Their class is built
by its own ``__init__`` with a stand-in model and tokenizer: ``generate`` appends one token and
``decode`` returns the next canned response, so their generate/strip/gate/extract/score/aggregate path
runs unmodified, one level per ``evaluate_dataset`` call.

The driver interface. Each benchmark has a module ``scripts/authors_drivers/<benchmark>.py`` (the name
of our ``critical_neurons/evaluation/reference/<benchmark>.py``) that defines ``DRIVER = Driver(...)`` with:

- ``module``, ``evaluator_class``: their file ``investigation/<module>.py`` and the class in it;
- ``method``: our benchmark's method name (``DEFAULTS.name``); its task, built as
  ``critical_neurons.evaluation.rescoring.TASKS`` rebuilds it with default settings, gives the reference blocks compared;
- ``their_row(sample)``: our sample (as our ``load_samples`` returns it) as a row of their dataset, which
  their code turns into the same prompt and gold;
- ``their_verdict(result, sample)``: their per-sample result as our reference block holds it: their
  scoring fields under their names, the copies of inputs (prompt, response, gold) left out
  (``scoring_fields`` for a flat block);
- ``fuzz(rng)``: one seeded random ``(sample, response)``; ``random_text`` composes responses;
- optional: ``source_fixes`` (see ``load_authors_module``), ``not_compared`` (keys of our blocks left
  out of the comparison: ours alone has them, or their values cannot agree), ``evaluate(evaluator, rows)`` (default ``evaluate_dataset(rows)``), ``their_level(result)``
  (default: their level dict without ``detailed_results`` and ``neurons_masked``), and ``meaningless``
  (responses that make the all-meaningless level).

Crafted cases are data: ``tests/fixtures/authors/crafted/<benchmark>.jsonl``, one
``{"sample": ..., "response": ...}`` a line. ``levels`` groups crafted cases in levels of 8, fuzz cases
in levels of 50, and adds an all-meaningless level and an empty one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import random
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from transformers import BatchEncoding

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.reference.golden import as_json

CRAFTED_LEVEL_SIZE = 8
FUZZ_LEVEL_SIZE = 50
# Characters and pieces that reach every extractor's patterns; drivers add their own phrases.
ALPHABET = (
    *"0123456789", "-", "+", ".", ",", "/", " ", " ", " ", *"ABCDEFGHIJ", *"abcdj", "(", ")", "\\boxed{", "}", "$", ":", "=",
    "\n", "\u2028", "\r", "\x0c", "\t", "*",
)


def default_evaluate(evaluator: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return evaluator.evaluate_dataset(rows)


def scoring_fields(*keys: str) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """A ``their_verdict`` keeping ``keys`` of their per-sample result, as they are."""

    def verdict(result: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
        return {key: result[key] for key in keys}

    return verdict


def default_level(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key not in ("detailed_results", "neurons_masked")}


@dataclass(frozen=True)
class Driver:
    """One benchmark's link between the authors' evaluator and ours (see the module docstring)."""

    module: str
    evaluator_class: str
    method: str
    their_row: Callable[[dict[str, Any]], dict[str, Any]]
    their_verdict: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
    fuzz: Callable[[random.Random], tuple[dict[str, Any], str]]
    evaluate: Callable[[Any, list[dict[str, Any]]], dict[str, Any]] = default_evaluate
    their_level: Callable[[dict[str, Any]], dict[str, Any]] = default_level
    source_fixes: tuple[tuple[str, str], ...] = ()
    not_compared: tuple[str, ...] = ()
    meaningless: tuple[str, ...] = ("", "  ", "!!", "a.", "aaaaaaaaaaaa", "42 17", "x\n\n\n\n\n\ny", "......", "1111111")


@dataclass
class Level:
    """Cases scored together, as one masking level of theirs and of ours."""

    name: str
    samples: list[dict[str, Any]]
    responses: list[str]
    their_samples: list[dict[str, Any]] = field(default_factory=list)
    their_level: dict[str, Any] | None = None
    raised: str | None = None


def random_text(rng: random.Random, pieces: Sequence[str], max_pieces: int = 14) -> str:
    """A response of 0..max_pieces pieces drawn from ``pieces`` (with repeats), for fuzzing."""
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, max_pieces)))


def load_authors_module(authors_repo: Path, name: str, source_fixes: Sequence[tuple[str, str]] = ()) -> ModuleType:
    """Their ``investigation/<name>.py``, imported from the checkout with ``modelscope`` stubbed if it is absent.

    ``source_fixes`` (old, new) apply only when this Python cannot parse their file as it is (an
    f-string that needs Python 3.12, in a logging line of a loader we never call).
    """
    path = authors_repo / "investigation" / f"{name}.py"
    if not path.is_file():
        raise UsageError("--authors_repo", f"{authors_repo} has no investigation/{name}.py", "pass a checkout of the authors' repository")
    source = path.read_text(encoding="utf-8")
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError:
        for old, new in source_fixes:
            source = source.replace(old, new)
        code = compile(source, str(path), "exec")
    if "modelscope" not in sys.modules and importlib.util.find_spec("modelscope") is None:
        msdatasets = ModuleType("modelscope.msdatasets")
        msdatasets.MsDataset = SimpleNamespace(load=None)  # their loaders are never called: samples come from us
        sys.modules.setdefault("modelscope", ModuleType("modelscope")).msdatasets = msdatasets
        sys.modules.setdefault("modelscope.msdatasets", msdatasets)
    module = ModuleType(f"authors_{name}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module


def authors_commit(authors_repo: Path) -> str | None:
    """The checkout's commit, recorded in goldens (None outside git)."""
    done = subprocess.run(["git", "-C", str(authors_repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


class CannedTokenizer:
    """Tokenises any prompt to one token; ``decode`` returns the next canned response."""

    pad_token = None
    eos_token = "</s>"
    eos_token_id = 0

    def __init__(self) -> None:
        self.responses: deque[str] = deque()

    def __call__(self, text: str, **kwargs: Any) -> BatchEncoding:
        ids = torch.zeros((1, 1), dtype=torch.long)
        return BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    def decode(self, ids: Any, **kwargs: Any) -> str:
        return self.responses.popleft()


class CannedModel(torch.nn.Module):
    """A model whose ``generate`` appends one token to the prompt (the tokenizer supplies the text)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def generate(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.cat([input_ids, torch.zeros((input_ids.shape[0], 1), dtype=input_ids.dtype)], dim=1)


def make_evaluator(module: ModuleType, class_name: str) -> tuple[Any, CannedTokenizer]:
    """Their evaluator, built by its own ``__init__`` around the stand-ins, and the tokenizer that feeds it responses."""
    tokenizer, model = CannedTokenizer(), CannedModel()
    module.AutoTokenizer = SimpleNamespace(from_pretrained=lambda *args, **kwargs: tokenizer)
    module.AutoModelForCausalLM = SimpleNamespace(from_pretrained=lambda *args, **kwargs: model)
    module.tqdm = lambda iterable, **kwargs: iterable  # one progress bar per level would flood the report
    silent = logging.getLogger(f"authors.{module.__name__}")
    silent.disabled = True
    return getattr(module, class_name)(model_path="canned", logger=silent), tokenizer


def run_theirs(driver: Driver, evaluator: Any, tokenizer: CannedTokenizer, level: Level) -> None:
    """Run their ``evaluate_dataset`` on the level; fill in their per-sample verdicts and level metrics (or what it raised)."""
    tokenizer.responses.extend(level.responses)
    try:
        result = driver.evaluate(evaluator, [driver.their_row(sample) for sample in level.samples])
    except Exception as error:  # their code's own failure is a recorded outcome, e.g. ZeroDivisionError on an empty level
        level.raised = f"{type(error).__name__}: {error}"
        tokenizer.responses.clear()
        return
    if tokenizer.responses:
        raise RuntimeError(f"{level.name}: their code generated {len(level.responses) - len(tokenizer.responses)} of {len(level.responses)} responses")
    level.their_samples = [as_json(driver.their_verdict(detail, sample)) for detail, sample in zip(result["detailed_results"], level.samples)]
    level.their_level = as_json(driver.their_level(result))


def read_crafted(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Crafted ``(sample, response)`` cases from a JSON-lines file."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("sample"), dict) or not isinstance(row.get("response"), str):
                raise UsageError("--benchmarks", f"{path} line {number} is not {{\"sample\": {{...}}, \"response\": \"...\"}}", "fix that line")
            cases.append((row["sample"], row["response"]))
    return cases


def chunks(name: str, cases: Sequence[tuple[dict[str, Any], str]], size: int) -> list[Level]:
    return [Level(f"{name} {start // size + 1}", [sample for sample, _ in cases[start : start + size]], [response for _, response in cases[start : start + size]]) for start in range(0, len(cases), size)]


def levels(driver: Driver, crafted: Sequence[tuple[dict[str, Any], str]], fuzz: int, seed: int) -> list[Level]:
    """The crafted cases in levels of 8, ``fuzz`` seeded random cases in levels of 50, an all-meaningless level and an empty one."""
    rng = random.Random(seed)
    fuzzed = [driver.fuzz(rng) for _ in range(fuzz)]
    anchor = crafted[0][0] if crafted else driver.fuzz(random.Random(seed))[0]
    meaningless = Level("all meaningless", [anchor] * len(driver.meaningless), list(driver.meaningless))
    return [*chunks("crafted", crafted, CRAFTED_LEVEL_SIZE), *chunks("fuzz", fuzzed, FUZZ_LEVEL_SIZE), meaningless, Level("empty", [], [])]
