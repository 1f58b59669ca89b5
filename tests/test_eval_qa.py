"""MMLU-Pro, GPQA, MGSM and SimpleQA: extraction on literal outputs, scorers, the CLIs on fixtures."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import ROOT, neuron_file, run_script

from critical_neurons.evaluation.tasks import gpqa, mgsm, mmlu_pro, simpleqa

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.mark.parametrize(
    ("text", "num_options", "expected"),
    [
        ("The answer is (C).", 10, "C"),
        ("the answer is (c)", 10, "C"),
        ("THE ANSWER IS (J)", 10, "J"),
        ("The answer is B", 10, "B"),
        ("The answer is: **D**", 10, "D"),
        ("The answer is A because water boils.", 10, "A"),
        ("The answer is (A). On reflection, the answer is (E).", 10, "E"),
        ("The answer is (B). No wait, the answer is (H).", 4, "B"),
        ("The answer is I.", 10, "I"),
        ("the answer is always B", 10, None),
        ("THE ANSWER IS ALWAYS DEBATED", 10, None),
        ("The answer is because the enzyme is denatured.", 10, None),
        ("The answer is I think (B)", 10, None),
        ('Please provide your answer as "The answer is (X)"', 10, None),
        ("I think it is B.", 10, None),
        ("The answer is (E)", 4, None),
        ("", 10, None),
    ],
)
def test_mmlu_pro_extraction(text, num_options, expected):
    assert mmlu_pro.extract_answer(text, num_options) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B).", "B"),
        ("the answer is (d)", "D"),
        ("Answer: C", "C"),
        ("A", "A"),
        ("Let me think.\nB.", "B"),
        ("**C**", "C"),
        ("(C) is correct because photons carry the force.", "C"),
        ("B) the photon", "B"),
        ("The answer is (A), not (B). So the answer is (D).", "D"),
        ("A good question. Let me think about it.", None),
        ("There are 10 possible states and 1 ground state.", None),
        ("(A) foo (B) bar", None),
        ("The answer is always hard to say", None),
        ("The answer is (E)", None),
        ("", None),
    ],
)
def test_gpqa_extraction(text, expected):
    assert gpqa.extract_answer(text) == expected


def test_gpqa_strict_extraction_reads_only_the_answer_phrase():
    assert gpqa.extract_answer("(C) is correct", strict=True) is None
    assert gpqa.extract_answer("So the answer is (C)", strict=True) == "C"
    assert gpqa.extract_answer("The answer is (D)", num_options=3) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 18.", "18"),
        ("So she has 1,000 apples.", "1000"),
        ("It costs $1,234.50 in total", "1234.5"),
        ("1,000,000 grains", "1000000"),
        ("The answer is 5. Next question: what is 7 + 9?", "5"),
        ("THE ANSWER IS 42", "42"),
        ("The final answer is: **$72**", "72"),
        ("Answer: 3.0", "3"),
        ("20 - 7 = 13", "13"),
        ("The temperature is -5 degrees", "-5"),
        ("Read pages 3-4", "4"),
        ("答案是18", "18"),
        ("1,2,3", "3"),
        ("I don't know", None),
        ("", None),
    ],
)
def test_mgsm_extraction(text, expected):
    assert mgsm.extract_answer(text) == expected


def test_mgsm_strict_extraction_needs_the_answer_phrase():
    assert mgsm.extract_answer("She has 8 apples", strict=True) is None
    assert mgsm.extract_answer("3 + 5 = 8, so the answer is 8", strict=True) == "8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris\nThe capital of France is Paris.", "Paris"),
        ("  \n Leonardo da Vinci  \nHe was Italian.", "Leonardo da Vinci"),
        ("100", "100"),
        ("", None),
        ("   \n  ", None),
    ],
)
def test_simpleqa_extraction_keeps_the_first_line(text, expected):
    assert simpleqa.extract_answer(text) == expected


def test_simpleqa_normalisation_and_f1():
    assert simpleqa.normalize("The  Beatles!") == "beatles"
    assert simpleqa.normalize("Éire, \"an\" island.") == "éire island"
    assert simpleqa.token_f1("Leonardo da Vinci", "leonardo da vinci") == 1.0
    assert simpleqa.token_f1("Vinci", "Leonardo da Vinci") == pytest.approx(0.5)
    assert simpleqa.token_f1("Michelangelo", "Leonardo da Vinci") == 0.0


def test_mmlu_pro_scorer_accepts_the_gold_letter_only():
    sample = {"question_id": 1, "question": "q", "options": ["a", "b", "c", "d"], "answer": "B", "category": "math"}
    assert mmlu_pro.score(sample, "The answer is (B).")["is_correct"]
    assert not mmlu_pro.score(sample, "The answer is (C).")["is_correct"]
    assert not mmlu_pro.score(sample, "the answer is because b")["is_correct"]
    summary = mmlu_pro.aggregate([mmlu_pro.score(sample, "The answer is (B)"), mmlu_pro.score(sample, "no idea")])
    assert summary["overall_accuracy"] == 0.5 and summary["extraction_rate"] == 0.5
    assert summary["category_accuracies"] == {"math": {"accuracy": 0.5, "correct": 1, "total": 2}}


def test_gpqa_scorer_and_faithful_shuffle():
    row = {"Question": "Q?", "Correct Answer": "right", "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3", "Record ID": "recX"}
    choices, gold = gpqa.shuffled_choices(row)
    state = random.getstate()
    try:  # the reference: reseed the global RNG with the md5-derived seed, then shuffle
        random.seed(gpqa.shuffle_seed("recX", "Q?"))
        expected = ["right", "w1", "w2", "w3"]
        random.shuffle(expected)
    finally:
        random.setstate(state)
    assert choices == expected and choices[gold] == "right"
    sample = {"question_id": "recX", "choices": choices, "answer": "ABCD"[gold], "subject": "s", "subdomain": "d", "difficulty": "e"}
    wrong = "ABCD"[(gold + 1) % 4]
    assert gpqa.score(sample, f"The answer is ({sample['answer']})")["is_correct"]
    assert not gpqa.score(sample, f"The answer is ({wrong})")["is_correct"]
    assert gpqa.shuffle_seed("", "Q?") == gpqa.shuffle_seed("", "Q?") != gpqa.shuffle_seed("", "Other?")


def test_mgsm_scorer_compares_numbers():
    sample = {"id": "en-0", "language": "en", "question": "q", "answer": "1000"}
    assert mgsm.score(sample, "They sell 1,000 pens.")["is_correct"]
    assert mgsm.score(sample, "The answer is 1000.00")["is_correct"]
    assert not mgsm.score(sample, "They sell 100 pens.")["is_correct"]
    assert not mgsm.score(sample, "No idea.")["is_correct"]


def test_simpleqa_scorer():
    sample = {"id": 0, "question": "Who painted the Mona Lisa?", "answer": "Leonardo da Vinci"}
    exact = simpleqa.score(sample, "Leonardo da Vinci.\nHe was born in 1452.")
    assert exact["exact_match"] and exact["gold_contained"] and exact["token_f1"] == 1.0
    contained = simpleqa.score(sample, "It was painted by Leonardo da Vinci")
    assert not contained["exact_match"] and contained["gold_contained"] and 0 < contained["token_f1"] < 1
    wrong = simpleqa.score(sample, "Michelangelo")
    assert not wrong["exact_match"] and not wrong["gold_contained"] and wrong["token_f1"] == 0.0
    number = simpleqa.score({"id": 1, "question": "q", "answer": "100"}, "1000")
    assert not number["gold_contained"]


def test_loaders_read_the_hub_schemas_of_the_fixtures():
    math = mmlu_pro.load_samples(str(FIXTURES / "mmlu_pro_test.jsonl"), categories=["MATH"])
    assert [sample["question_id"] for sample in math] == [71, 73] and math[0]["answer"] == "C"
    for sample in gpqa.load_samples(str(FIXTURES / "gpqa_diamond.csv")):
        assert len(sample["choices"]) == 4 and sample["question_id"].startswith("rec")
    assert gpqa.load_samples(str(FIXTURES / "gpqa_diamond.csv"))[1]["choices"][2] == "+7"  # "+7" stays text, not the int 7
    samples = mgsm.load_samples(str(FIXTURES / "mgsm_{lang}.jsonl"), ["en", "es"])
    assert [sample["language"] for sample in samples] == ["en"] * 3 + ["es"] * 2 and samples[1]["answer"] == "1000"
    assert simpleqa.load_samples(str(FIXTURES / "simpleqa_test.jsonl"))[2]["answer"] == "Leonardo da Vinci"


@pytest.fixture
def one_thread():
    """Generation on one intra-op thread: on this shared 2-core machine two threads spin-wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


EVALUATORS = {
    "mmlu_pro": ("evaluation/mmlu_pro_evaluator.py", "mmlu_pro_test.jsonl", [], "overall_accuracy", "overall_accuracy", "predicted_answer"),
    "gpqa": ("evaluation/gpqa_evaluator.py", "gpqa_diamond.csv", [], "overall_accuracy", "overall_accuracy", "predicted_answer"),
    "mgsm": ("evaluation/mgsm_evaluator.py", "mgsm_{lang}.jsonl", ["--languages", "en,es"], "accuracy", "meaningful_response_rate", "predicted_answer"),
    "simpleqa": ("evaluation/simpleqa_evaluator.py", "simpleqa_test.jsonl", ["--template_idx", "3"], "exact_match_rate", "meaningful_response_rate", "evaluation"),
}


@pytest.mark.parametrize("name", EVALUATORS)
def test_evaluator_cli_runs_levels_and_resumes(name, tiny_model_path, tmp_path, one_thread):
    script, data, extra, metric, reference_metric, reference_field = EVALUATORS[name]
    output = tmp_path / f"{name}.json"
    args = [
        "--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1",
        "--dataset_path", FIXTURES / data, "--max_new_tokens", "4", "--output_file", output, *extra,
    ]
    run_script(script, *args, check=True)
    payload = json.loads(output.read_text())
    assert [entry["masking_level"] for entry in payload["results"]] == [0, 1]
    assert [entry["distinct_channels_masked"] for entry in payload["results"]] == [0, 1]
    for entry in payload["results"]:
        assert 0.0 <= entry[metric] <= 1.0 and "meaningful_response_rate" in entry
        assert 0.0 <= entry["reference"][reference_metric] <= 1.0  # the authors' metric beside ours
        detail = entry["detailed_results"][0]
        assert {"prompt", "response", "extracted_answer", "gold"} <= set(detail)
        assert reference_field in detail["reference"]  # the authors' per-sample field name
    rescored = tmp_path / "rescored.json"
    run_script("evaluation/rescore.py", output, "--output_file", rescored, check=True)
    assert json.loads(rescored.read_text())["results"] == payload["results"]  # the stored details are enough to rescore
    if name == "mgsm":
        assert set(payload["results"][0]["language_accuracies"]) == {"en", "es"}
    before = output.read_bytes()
    rerun = run_script(script, *args, check=True)
    assert "already in" in rerun.stderr and output.read_bytes() == before


@pytest.mark.real_model
def test_simpleqa_on_the_default_model_collapses_when_channel_507_is_masked(default_model_path, tmp_path, one_thread):
    data = tmp_path / "simpleqa.jsonl"
    data.write_text("".join((FIXTURES / "simpleqa_test.jsonl").read_text().splitlines(keepends=True)[:2]))
    neurons = tmp_path / "neurons.json"
    record = {"layer_name": "model.layers.11.mlp.down_proj", "batch_idx": 0, "seq_idx": 0, "hidden_idx": 507, "activation_diff": 1.0}
    neurons.write_text(json.dumps({"top_neurons": [record]}))
    output = tmp_path / "simpleqa.json"
    run_script(
        "evaluation/simpleqa_evaluator.py", "--model_path", default_model_path, "--neuron_file", neurons, "--masking_levels", "0,1",
        "--dataset_path", data, "--max_new_tokens", "6", "--output_file", output, check=True,
    )
    clean, masked = json.loads(output.read_text())["results"]
    assert "paris" in clean["detailed_results"][0]["response"].lower()
    assert clean["gold_contained_rate"] > masked["gold_contained_rate"]
    assert [d["response"] for d in clean["detailed_results"]] != [d["response"] for d in masked["detailed_results"]]
