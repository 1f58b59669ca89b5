"""Run the authors' own evaluators and our reference scorers on the same responses and print every disagreement.

    python scripts/compare_with_authors.py --authors_repo ../authors_checkout --fuzz 2000
    python scripts/compare_with_authors.py --authors_repo ../authors_checkout --benchmarks mgsm,gpqa --record

Their evaluator classes are imported from the checkout (nothing of theirs ships here) and driven with
canned responses (see scripts/authors_drivers/common.py): crafted cases from
tests/fixtures/authors/crafted/<benchmark>.jsonl (or --crafted_dir) and --fuzz seeded random ones, in levels. Each
disagreement prints the response, their verdict and ours; a count per benchmark follows. --record
writes their outputs as goldens (tests/fixtures/authors/golden/<benchmark>.json.gz), which CI replays
against our scorers. Exit status 1 when anything disagrees.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path

from authors_drivers.common import Driver, Level, authors_commit, levels, load_authors_module, make_evaluator, read_crafted, run_theirs

from critical_neurons.cli import ArgumentParser, integer, run
from critical_neurons.errors import UsageError
from critical_neurons.evaluation.reference.golden import compare_level, write_golden
from critical_neurons.evaluation.rescoring import TASKS

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("mmlu_pro", "gpqa", "mgsm", "simpleqa", "math500", "ifeval", "humaneval")
CRAFTED = ROOT / "tests" / "fixtures" / "authors" / "crafted"
GOLDEN = ROOT / "tests" / "fixtures" / "authors" / "golden"


def benchmark_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise UsageError("--benchmarks", f"{','.join(unknown) or text!r} names no benchmark", f"choose from {','.join(BENCHMARKS)}")
    return names


def golden(name: str, method: str, not_compared: tuple[str, ...], commit: str | None, fuzz: int, seed: int, compared: list[Level]) -> dict:
    """Their outputs on every level, samples stored once."""
    samples: list[dict] = []
    index: dict[str, int] = {}

    def sample_index(sample: dict) -> int:
        key = repr(sorted(sample.items()))
        if key not in index:
            index[key] = len(samples)
            samples.append(sample)
        return index[key]

    return {
        "benchmark": name,
        "method": method,
        "not_compared": list(not_compared),
        "authors_commit": commit,
        "fuzz": fuzz,
        "seed": seed,
        "samples": samples,
        "levels": [
            {
                "name": level.name,
                "cases": [{"sample": sample_index(sample), "response": response, "theirs": theirs} for sample, response, theirs in zip(level.samples, level.responses, level.their_samples or [None] * len(level.samples))],
                "theirs": level.their_level,
                "raised": level.raised,
            }
            for level in compared
        ],
    }


def compare(name: str, driver: Driver, authors_repo: Path, crafted_dir: Path, fuzz: int, seed: int, record: bool) -> tuple[int, int, int, int]:
    """Print every disagreement on one benchmark; (cases, per-sample disagreements, levels, per-level disagreements)."""
    crafted_file = crafted_dir / f"{name}.jsonl"
    crafted = read_crafted(crafted_file) if crafted_file.is_file() else []
    evaluator, tokenizer = make_evaluator(load_authors_module(authors_repo, driver.module, driver.source_fixes), driver.evaluator_class)
    compared = levels(driver, crafted, fuzz, seed)
    sample_disagreements = level_disagreements = 0
    with contextlib.ExitStack() as stack:
        task = TASKS[driver.method][1]({}, stack)
        for level in compared:
            run_theirs(driver, evaluator, tokenizer, level)
            if level.raised:
                print(f"[{name}] {level.name}: their code raised {level.raised} (nothing to compare)")
                continue
            per_sample, per_level = compare_level(task, level.samples, level.responses, level.their_samples, level.their_level, driver.not_compared)
            for index, lines in per_sample:
                print(f"[{name}] {level.name}, response {level.responses[index]!r}:\n    " + "\n    ".join(lines))
            if per_level:
                print(f"[{name}] {level.name} (level):\n    " + "\n    ".join(per_level))
            sample_disagreements += len(per_sample)
            level_disagreements += bool(per_level)
    if record:
        write_golden(GOLDEN / f"{name}.json.gz", golden(name, driver.method, driver.not_compared, authors_commit(authors_repo), fuzz, seed, compared))
    return sum(len(level.samples) for level in compared), sample_disagreements, len(compared), level_disagreements


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--authors_repo", required=True, type=Path, help="a checkout of the authors' repository (its investigation/ folder is read)")
    parser.add_argument("--benchmarks", type=benchmark_list, default=list(BENCHMARKS), help=f"comma-separated, from {','.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--crafted_dir", type=Path, default=CRAFTED, help="where <benchmark>.jsonl crafted cases are (default: tests/fixtures/authors/crafted)")
    parser.add_argument("--fuzz", type=integer(0), default=200, help="seeded random responses per benchmark (default 200)")
    parser.add_argument("--seed", type=integer(0), default=0, help="the fuzz generator's seed (default 0)")
    parser.add_argument("--record", action="store_true", help="write their outputs to tests/fixtures/authors/golden/<benchmark>.json.gz")
    args = parser.parse_args()
    if not (args.authors_repo / "investigation").is_dir():
        raise UsageError("--authors_repo", f"{args.authors_repo} has no investigation/ folder", "pass a checkout of the authors' repository")
    counts = {}
    for name in args.benchmarks:
        try:
            driver = importlib.import_module(f"authors_drivers.{name}").DRIVER
        except ModuleNotFoundError as error:
            raise UsageError("--benchmarks", f"no driver for {name} ({error})", "add scripts/authors_drivers/{name}.py") from None
        counts[name] = compare(name, driver, args.authors_repo, args.crafted_dir, args.fuzz, args.seed, args.record)
    print(f"\n{'benchmark':<10} {'cases':>6} {'sample disagreements':>21} {'levels':>7} {'level disagreements':>20}")
    for name, (cases, samples, level_count, level_disagreements) in counts.items():
        print(f"{name:<10} {cases:>6} {samples:>21} {level_count:>7} {level_disagreements:>20}")
    if any(samples or level_disagreements for _, samples, _, level_disagreements in counts.values()):
        sys.exit(1)


if __name__ == "__main__":
    run(main)
