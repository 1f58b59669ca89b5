"""The report never merges or compares models, skips malformed files with one warning each, and the ablation loops stop at the first error."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from test_ablation_report import channel_order, model_block, ranking_payload, run_report, stage2_payload, write, write_ablation, write_model_results

from critical_neurons.reporting.results import ResultFile, model_labels, paired_critical_set, read_result, read_results
from critical_neurons.reporting.tables import ablation_rows

MODEL_A = model_block("smollm2-135m", "a" * 16)
MODEL_B = {**model_block("smollm2-135m", "b" * 16), "path": "/elsewhere/smollm2-135m"}  # same folder name, another model
MODEL_C = model_block("tiny-llama", "c" * 16)


def warnings_about(caplog, path) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING and str(path) in record.getMessage()]


def test_two_models_in_one_results_folder_stay_apart(tmp_path):
    neurons, results = tmp_path / "neurons", tmp_path / "results"
    ranking_a = ranking_payload(channel_order(0, 1.0), model=MODEL_A)
    write(neurons / "importance_ranked_neurons.json", ranking_a)
    write_model_results(results / "a", MODEL_A, ranking_a)
    write_model_results(results / "b", MODEL_B, ranking_payload(channel_order(1, 0.5), model=MODEL_B), shift=1.0)
    for path in (results / "b").iterdir():  # one folder, two models' files
        path.rename(results / "a" / f"b_{path.name}")
    out, _, _ = run_report(tmp_path, neurons, results / "a", tmp_path / "no_ablation")

    label_a, label_b = "smollm2-135m@aaaaaaaa", "smollm2-135m@bbbbbbbb"
    critical = list(csv.DictReader((out / "critical_neurons.csv").open()))
    assert sorted(row["model"] for row in critical) == [label_a, label_b]
    baselines = list(csv.DictReader((out / "baselines.csv").open()))
    assert [row["model"] for row in baselines] == [label_a] * 11 + [label_b] * 11  # one block of levels per model
    at_100 = {row["model"]: row for row in baselines if row["level"] == "100"}
    assert at_100[label_a]["random"].startswith("81 ±") and at_100[label_b]["random"].startswith("82 ±")
    assert at_100[label_a]["ours"] == "7.94e401" and at_100[label_b]["ours"] == "7.94e402"
    before_after = {(row["model"], row["task"]): row["after"] for row in csv.DictReader((out / "before_after.csv").open())}
    assert before_after == {(label_a, "wikitext"): "1.58e350", (label_b, "wikitext"): "1.58e351", (label_a, "mmlu_pro"): "0.0", (label_b, "mmlu_pro"): "0.0"}


def test_model_labels_and_location_pairing(tmp_path):
    files = {name: write(tmp_path / f"{name}.json", ranking_payload(channel_order(0, 1.0), model=model)) for name, model in (("a", MODEL_A), ("b", MODEL_B), ("c", MODEL_C))}
    rankings = read_results(files.values())
    assert sorted(model_labels(rankings).values()) == ["smollm2-135m@aaaaaaaa", "smollm2-135m@bbbbbbbb", "tiny-llama"]
    critical_b = write(tmp_path / "0_critical_b.json", stage2_payload(rankings[1].payload, 1))  # sorts first, another model
    critical_a = write(tmp_path / "1_critical_a.json", stage2_payload(rankings[0].payload, 2))
    stage2 = read_results([critical_b, critical_a])
    assert paired_critical_set(rankings[0], stage2).path == critical_a
    assert paired_critical_set(rankings[2], stage2) is None


def test_ablation_rows_never_compare_two_models(tmp_path, caplog):
    write_ablation(tmp_path)
    other = write(tmp_path / "noise_scale_2_neurons.json", ranking_payload(channel_order(2, 0.6), noise_scale=2, model=MODEL_C))
    write(tmp_path / "noise_scale_3_critical.json", stage2_payload(ranking_payload(channel_order(3, 0.6), model=MODEL_C), 1))
    rankings = read_results(sorted(tmp_path.glob("noise_scale_*_neurons.json")))
    authors = ranking_payload(channel_order(4, 0.6), noise_scale=4)  # the authors' format, as summarize.py accepts it
    del authors["kind"], authors["model"]
    unknown = write(tmp_path / "noise_scale_4_neurons.json", authors)
    rankings.append(ResultFile(unknown, authors))
    with caplog.at_level(logging.WARNING):
        rows = ablation_rows(rankings, read_result(tmp_path / "noise_scale_5_neurons.json"), top_k=10)
    settings = [row["setting"] for row in rows]
    assert "noise_scale_2" not in settings and len(warnings_about(caplog, other)) == 1
    assert "noise_scale_4" in settings and any("records no model" in message for message in warnings_about(caplog, unknown))
    assert next(row for row in rows if row["setting"] == "noise_scale_3")["critical_records"] is None  # its stage-2 file is another model's


BROKEN = {
    "invalid.json": "{not json",
    "not_utf8.json": b"\xff\xfe{}",
    "deep.json": "[" * 200_000 + "]" * 200_000,
    "list.json": "[1, 2]",
    "no_kind.json": json.dumps({"method": "multi_gpu_activation_difference_analysis", "top_neurons": []}),
    "kind_not_string.json": json.dumps({"kind": 3}),
    "results_not_list.json": {"results": {"0": {}}},
    "no_level.json": {"results": [{"perplexity": 20.0}]},
    "bool_level.json": {"results": [{"masking_level": True, "perplexity": 20.0}]},
    "text_metric.json": {"results": [{"masking_level": 0, "perplexity": "high"}]},
    "huge_metric.json": {"results": [{"masking_level": 0, "perplexity": 10**400}]},
    "huge_level.json": {"results": [{"masking_level": 10**400, "perplexity": 20.0}]},
    "no_metric.json": {"results": [{"masking_level": 0, "accuracy": 0.5}]},
    "no_primary_metric.json": {"primary_metric": None},
    "no_model.json": {"model": None},
    "bad_model_info.json": {"model_info": [1]},
    "bad_record.json": {"kind": "ranking", "top_neurons": [{"layer_name": "model.layers.0.mlp", "hidden_idx": "3"}]},
    "bad_steps.json": {"kind": "critical_set", "final_masked_neurons": [], "masking_steps": {"1": {}}},
    "text_random.json": {"kind": "random_masking", "primary_metric": "mean_perplexity", "results": [{"masking_level": 0, "mean_perplexity": "80"}]},
}


def broken_file(folder, name):
    content = BROKEN[name]
    if isinstance(content, dict):  # a well-formed evaluation with one part broken
        good = {"kind": "evaluation", "method": "wikitext", "primary_metric": "perplexity", "model": MODEL_A, "model_info": {}, "results": [{"masking_level": 0, "perplexity": 20.0}]}
        content = json.dumps({**good, **content})
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("name", [*BROKEN, "folder.json", "dangling.json"])
def test_malformed_file_is_skipped_with_one_warning(tmp_path, caplog, name):
    if name == "folder.json":
        (path := tmp_path / name).mkdir()
    elif name == "dangling.json":
        (path := tmp_path / name).symlink_to(tmp_path / "missing")
    else:
        path = broken_file(tmp_path, name)
    with caplog.at_level(logging.WARNING):
        assert read_result(path) is None
    assert len(caplog.records) == 1 and f"Skipping {path}: " in caplog.records[0].getMessage() and "\n" not in caplog.records[0].getMessage()


def test_report_over_a_folder_of_broken_files_warns_once_per_file(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    paths = [broken_file(results, name) for name in BROKEN]
    (results / "folder.json").mkdir()
    write(tmp_path / "neurons" / "importance_ranked_neurons.json", {"kind": "ranking", "top_neurons": "none"})
    ablation = tmp_path / "ablation"
    write_ablation(ablation)
    (ablation / "noise_scale_5_neurons.json").write_text("[" * 100_000)  # the default setting unusable: that table is skipped
    (ablation / "num_samples_25_critical.json").write_text(json.dumps({"kind": "critical_set"}))
    _, _, result = run_report(tmp_path, tmp_path / "neurons", results, ablation)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    for path in [*paths, results / "folder.json", tmp_path / "neurons" / "importance_ranked_neurons.json", ablation / "num_samples_25_critical.json"]:
        assert sum(f"Skipping {path}: " in line for line in warnings) == 1, path
    assert any("no usable default ranking" in line for line in warnings)


def test_ablation_loop_stops_at_the_first_model_error(tmp_path):
    """input_texts.sh goes on past a refused (too short) text; a missing model must stop it at the first step."""
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "calls"
    (shim / "python").write_text(  # the first call runs for real; any later call is only counted
        f'#!/usr/bin/env bash\nbasename "$1" >> {calls}\n[ "$(wc -l < {calls})" -eq 1 ] && exec {sys.executable} "$@"\nexit 0\n'
    )
    (shim / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", NUM_SAMPLES="2")
    result = subprocess.run(["bash", str(ROOT / "ablation" / "input_texts.sh"), str(tmp_path / "no_model"), str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2 and "error: --model_path" in result.stderr and "refused" not in result.stderr
    assert calls.read_text().splitlines() == ["1_importance_evaluation.py"]  # stage 1 of the first text, nothing after it
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.json"))
