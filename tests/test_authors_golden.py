"""The reference scorers against goldens recorded from the authors' own evaluators (scripts/compare_with_authors.py --record).

Each golden holds their per-sample verdicts and level metrics on crafted and seeded-random responses;
any difference of ours, per sample or per level, fails here without their checkout.
"""

from __future__ import annotations

import contextlib

import pytest
from conftest import ROOT

from critical_neurons.reference.golden import read_golden, replay
from critical_neurons.rescoring import TASKS

GOLDEN = ROOT / "tests" / "fixtures" / "authors" / "golden"
BENCHMARKS = ("mmlu_pro", "gpqa", "mgsm", "simpleqa", "math500")
MIN_CRAFTED, MIN_FUZZ = 40, 2000


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_reference_scorer_gives_the_authors_outputs(benchmark):
    golden = read_golden(GOLDEN / f"{benchmark}.json.gz")
    levels = golden["levels"]
    crafted = sum(len(level["cases"]) for level in levels if level["name"].startswith("crafted"))
    fuzzed = sum(len(level["cases"]) for level in levels if level["name"].startswith("fuzz"))
    assert crafted >= MIN_CRAFTED and fuzzed >= MIN_FUZZ
    assert any(level["name"] == "all meaningless" and level["theirs"] for level in levels)
    with contextlib.ExitStack() as stack:
        disagreements = replay(golden, TASKS[golden["method"]][1]({}, stack))
    assert not disagreements, f"{len(disagreements)} disagreements with the authors' code:\n" + "\n".join(disagreements[:30])
