"""IFEval: the official checkers offline (accept / reject per instruction type, strict vs loose), metrics, the CLI, bad input."""

from __future__ import annotations

import json

import nltk
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, neuron_file, run_script
from if_verifiable.ifeval import instructions_util

from critical_neurons.evaluation.tasks import ifeval

SCRIPT = "evaluation/ifeval_evaluator.py"
FIXTURE = ROOT / "tests" / "fixtures" / "ifeval_train.jsonl"
END = "Is there anything else I can help with?"


@pytest.mark.parametrize(
    "instruction_id, kwargs, compliant, violating",
    [
        ("punctuation:no_comma", {}, "Bears hunt seals on the ice.", "Bears hunt seals, mostly on the ice."),
        ("change_case:english_lowercase", {}, "bears hunt seals on the sea ice in winter.", "Bears hunt seals on the sea ice in winter."),
        ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}, "Bears hunt. Seals hide.", "Bears hunt. Seals hide. Ice melts. Summer ends."),
        ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 3}, "Mr. Bear hunts. Seals hide. Ice melts.", "Bears hunt seals."),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Facts:\n* Bears swim.\n* Bears hunt.\nDone.", "Facts:\n* Bears swim.\n* Bears hunt.\n* Bears sleep.\nDone."),
        ("keywords:existence", {"keywords": ["seal", "ice"]}, "The bear waits for a seal at the ice edge.", "The bear waits at the edge."),
        ("startend:end_checker", {"end_phrase": END}, f"Bears hunt seals. {END}", f"{END} Bears hunt seals."),
        ("detectable_format:title", {}, "<<Polar Bears>>\nThey hunt seals.", "Polar Bears\nThey hunt seals."),
        ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "BEARS hunt SEALS.", "Bears hunt seals."),
        ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see you at [address].", "Dear [name], see you soon."),
    ],
)
def test_official_checkers_accept_and_reject(instruction_id, kwargs, compliant, violating):
    good = ifeval.check_instructions(compliant, "prompt", [instruction_id], [kwargs])
    bad = ifeval.check_instructions(violating, "prompt", [instruction_id], [kwargs])
    assert good["strict_follow_instruction_list"] == good["loose_follow_instruction_list"] == [True], good
    assert bad["strict_follow_instruction_list"] == bad["loose_follow_instruction_list"] == [False], bad
    assert good["checker_errors"] == bad["checker_errors"] == {}


def test_loose_forgives_a_preamble_line_strict_does_not():
    verdicts = ifeval.check_instructions("Sure! Here it is:\nall lowercase words here.", "prompt", ["change_case:english_lowercase"], [{}])
    assert verdicts["strict_follow_instruction_list"] == [False]
    assert verdicts["loose_follow_instruction_list"] == [True]


def test_unknown_ids_and_empty_responses_count_as_not_followed():
    unknown = ifeval.check_instructions("fine text", "prompt", ["punctuation:no_comma", "made:up"], [{}, {}])
    assert unknown["strict_follow_instruction_list"] == [True, False] and "made:up" in unknown["checker_errors"]
    empty = ifeval.check_instructions("   ", "prompt", ["punctuation:no_comma"], [{}])
    assert empty["strict_follow_instruction_list"] == empty["loose_follow_instruction_list"] == [False]


def test_offline_splitter_is_restored_and_reported():
    saved = (instructions_util._get_sentence_tokenizer, nltk.tokenize._get_punkt_tokenizer)
    with ifeval.offline_checkers():
        assert instructions_util.count_sentences("One here. Two here. Three here.") == 3
    assert (instructions_util._get_sentence_tokenizer, nltk.tokenize._get_punkt_tokenizer) == saved
    assert ifeval.sentence_splitter() in {ifeval.UNTRAINED_SPLITTER, ifeval.TRAINED_SPLITTER}


def test_struct_kwargs_lose_their_none_fillers(tmp_path):
    """The hub's parquet stores kwargs as a struct: every dict has every key, absent ones None."""
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    parquet = tmp_path / "ifeval.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert None in pq.read_table(parquet).to_pylist()[0]["kwargs"][0].values()
    samples = ifeval.load_samples(str(parquet))
    assert samples == ifeval.load_samples(str(FIXTURE))
    assert [sample["kwargs"] for sample in samples] == [row["kwargs"] for row in rows]


def test_score_and_aggregate():
    sample = next(sample for sample in ifeval.load_samples(str(FIXTURE)) if sample["key"] == 1019)
    task = ifeval.task()
    perfect = task.score(sample, "a cat sat. it purred. any other questions?")
    lowercase_only = task.score(sample, "a cat sat. it purred. it slept. it woke. it ate. the end.")
    assert perfect["follow_all_instructions_strict"] and not lowercase_only["follow_all_instructions_strict"]
    metrics = task.aggregate([perfect, lowercase_only])
    assert metrics["strict_prompt_accuracy"] == 0.5 and metrics["total_instructions"] == 6
    assert metrics["strict_instruction_correct"] == 4 and metrics["strict_instruction_accuracy"] == pytest.approx(4 / 6)
    assert metrics["instruction_accuracies"]["change_case:english_lowercase"]["strict_accuracy"] == 1.0
    assert metrics["instruction_accuracies"]["startend:end_checker"] == {"strict_accuracy": 0.5, "loose_accuracy": 0.5, "strict_correct": 1, "loose_correct": 1, "total": 2}


def test_cli_end_to_end(tiny_model_path, tmp_path):
    output = tmp_path / "ifeval.json"
    args = ["--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file(tmp_path), "--masking_levels", "0,1", "--dataset_path", FIXTURE]
    run_script(SCRIPT, *args, "--max_new_tokens", "8", "--max_samples", "2", "--output_file", output, check=True)
    result = json.loads(output.read_text())
    assert [entry["masking_level"] for entry in result["results"]] == [0, 1]
    assert result["dataset_info"]["sentence_splitter"] == ifeval.sentence_splitter()
    for entry in result["results"]:
        assert entry["total_prompts"] == entry["total_samples"] == 2
        assert 0.0 <= entry["strict_prompt_accuracy"] <= entry["loose_prompt_accuracy"] <= 1.0
        assert {"prompt", "response", "key", "strict_follow_instruction_list", "loose_follow_instruction_list"} <= set(entry["detailed_results"][0])
        assert 0.0 <= entry["reference"]["strict_prompt_accuracy"] <= entry["reference"]["loose_prompt_accuracy"] <= 1.0
    rescored = tmp_path / "rescored.json"
    run_script("evaluation/rescore.py", output, "--output_file", rescored, check=True)
    assert json.loads(rescored.read_text())["results"] == result["results"]  # the stored details are enough to rescore
