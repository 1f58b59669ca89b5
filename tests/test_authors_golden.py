"""The reference scorers against goldens recorded from the authors' own evaluators (scripts/compare_with_authors.py --record).

Each golden holds their per-sample verdicts and level metrics on crafted and seeded-random responses;
any difference of ours, per sample or per level, fails here without their checkout.
"""

from __future__ import annotations

import contextlib

import pytest
from conftest import ROOT, assert_usage_error, run_script

from critical_neurons.evaluation.reference.golden import read_golden, replay
from critical_neurons.evaluation.rescoring import TASKS

GOLDEN = ROOT / "tests" / "fixtures" / "authors" / "golden"
# Benchmarks whose reference scorer reproduces the authors' code; each golden here must replay with no disagreement.
BENCHMARKS = ("mmlu_pro", "gpqa", "mgsm", "simpleqa", "math500", "ifeval", "humaneval")
MIN_CRAFTED, MIN_FUZZ = 40, 2000
# HumanEval's cases run programs (a few tenths of a second each), so its golden keeps fewer random ones.
FUZZ_RECORDED = {"humaneval": 100}


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_reference_scorer_gives_the_authors_outputs(benchmark):
    golden = read_golden(GOLDEN / f"{benchmark}.json.gz")
    levels = golden["levels"]
    crafted = sum(len(level["cases"]) for level in levels if level["name"].startswith("crafted"))
    fuzzed = sum(len(level["cases"]) for level in levels if level["name"].startswith("fuzz"))
    assert crafted >= MIN_CRAFTED and fuzzed >= FUZZ_RECORDED.get(benchmark, MIN_FUZZ)
    assert any(level["name"] == "all meaningless" and level["theirs"] for level in levels)
    with contextlib.ExitStack() as stack:
        disagreements = replay(golden, TASKS[golden["method"]][1]({}, stack))
    assert not disagreements, f"{len(disagreements)} disagreements with the authors' code:\n" + "\n".join(disagreements[:30])


@pytest.mark.parametrize(("case", "flag"), [("no_checkout", "--authors_repo"), ("unknown_benchmark", "--benchmarks"), ("bad_crafted_line", "--benchmarks")])
def test_compare_with_authors_bad_input_is_one_line(case, flag, tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "investigation").mkdir(parents=True)
    (checkout / "investigation" / "mgsm_evaluator.py").write_text("")
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "mgsm.jsonl").write_text('{"sample": {}, "response": 3}\n')
    args = {
        "no_checkout": ["--authors_repo", tmp_path / "missing"],
        "unknown_benchmark": ["--authors_repo", checkout, "--benchmarks", "mgsm,hellaswag"],
        "bad_crafted_line": ["--authors_repo", checkout, "--benchmarks", "mgsm", "--crafted_dir", crafted],
    }[case]
    assert_usage_error(run_script("scripts/compare_with_authors.py", *args, in_process=False), flag)
