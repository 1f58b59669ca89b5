"""Ablation summariser, report tables and figures on small synthetic result files; the too-short text refusal."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHORT_BOOKENDS_TEXT, run_script

from critical_neurons.outputs.records import Channel
from critical_neurons.reporting.rank_statistics import compare_rankings, kendall_tau_b, spearman
from critical_neurons.reporting.results import layer_and_type, read_result, read_results
from critical_neurons.reporting.tables import ablation_rows

LAYERS, WIDTH = 4, 8


def channel_order(seed: int, default_share: float) -> list[tuple[str, int]]:
    """A ranking over 4 layers x 8 channels of down_proj: the default order with a seeded share reshuffled."""
    channels = [(f"model.layers.{layer}.mlp.down_proj", hidden) for layer in range(LAYERS) for hidden in range(WIDTH)]
    rng = np.random.default_rng(seed)
    moved = rng.choice(len(channels), size=int(len(channels) * (1 - default_share)), replace=False)
    order = list(range(len(channels)))
    shuffled = rng.permutation(moved)
    for source, target in zip(moved, shuffled):
        order[source] = target
    return [channels[index] for index in order]


def model_block(name="smollm2-135m", fingerprint="0123456789abcdef", model_type="llama"):
    return {"path": f"/checkpoints/{name}", "model_type": model_type, "fingerprint": fingerprint, "num_parameters": 1000}


def ranking_payload(channels, noise_scale=5.0, num_samples=100, method="multi_gpu_activation_difference_analysis", model=None):
    records = [
        {"layer_name": name, "batch_idx": 0, "seq_idx": seq, "hidden_idx": hidden, "activation_diff": float(100 - rank)}
        for rank, ((name, hidden), seq) in enumerate((channel, seq) for channel in channels for seq in range(2))
    ]
    records.sort(key=lambda record: -record["activation_diff"])
    return {"kind": "ranking", "method": method, "input_text": SHORT_BOOKENDS_TEXT, "noise_scale": noise_scale, "num_samples": num_samples, "num_tokens": 20,
            "total_neurons": len(records), "top_neurons": records, "model": model or model_block()}


def stage2_payload(ranking, count):
    return {
        "kind": "critical_set", "method": "prefix_search", "ranking_method": ranking["method"], "model": ranking["model"],
        "baseline_perplexity": 82.1, "test_text": SHORT_BOOKENDS_TEXT, "step_size": 1, "max_magnitude_increase": 1.0,
        "masking_steps": [{"step": 1, "neurons_masked": count, "log10_perplexity": 6.3, "magnitude_increase": 4.4, "masked_perplexity": 2e6}],
        "final_masked_neurons": ranking["top_neurons"][:count], "stopping_reason": "magnitude_increase_exceeded",
        "model_info": {"model_path": ranking["model"]["path"]},
    }


def write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def write_ablation(folder):
    for alpha in (1, 3, 5, 7, 10):
        ranking = ranking_payload(channel_order(alpha, 1.0 if alpha == 5 else 0.6), noise_scale=alpha)
        write(folder / f"noise_scale_{alpha}_neurons.json", ranking)
        write(folder / f"noise_scale_{alpha}_critical.json", stage2_payload(ranking, 1 + alpha % 3))
    for samples in (25, 50, 75, 100, 125):
        ranking = ranking_payload(channel_order(samples, 1.0 if samples == 100 else 0.8), num_samples=samples)
        write(folder / f"num_samples_{samples}_neurons.json", ranking)
        if samples != 75:  # one setting without a stage-2 result
            write(folder / f"num_samples_{samples}_critical.json", stage2_payload(ranking, 2))


def test_rank_statistics_match_hand_values():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert kendall_tau_b([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.6)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties: tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) with C=5, D=0, n0=6, one tie in x -> 5 / sqrt(5 * 6)
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(5 * 6))
    a = [Channel("m", index) for index in range(10)]
    same = compare_rankings(a, a, 5)
    assert same["overlap"] == 1.0 and same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert compare_rankings(a, a[::-1], 5)["overlap"] == 0.0
    assert layer_and_type("model.layers.11.mlp.down_proj") == (11, "mlp.down_proj")
    assert layer_and_type("lm_head") == (None, "lm_head")


def rankings_in(folder, pattern):
    return read_results(sorted(folder.glob(pattern)))


def test_ablation_rows_one_per_setting(tmp_path):
    write_ablation(tmp_path)
    rankings = rankings_in(tmp_path, "noise_scale_*_neurons.json")
    alpha = ablation_rows(rankings, read_result(tmp_path / "noise_scale_5_neurons.json"), top_k=10)
    assert [row["noise_scale"] for row in alpha] == [1, 3, 5, 7, 10] and {row["model"] for row in alpha} == {"smollm2-135m"}
    default = next(row for row in alpha if row["is_default"])
    assert default["overlap"] == 1.0 and default["spearman"] == pytest.approx(1.0) and default["critical_records"] == 3 and default["critical_channels"] == 2
    assert all(row["critical_records"] is not None for row in alpha)

    calls = []
    samples = ablation_rows(
        rankings_in(tmp_path, "num_samples_*_neurons.json"), read_result(tmp_path / "num_samples_100_neurons.json"),
        stage2=lambda ranking: calls.append(ranking.path.name) or stage2_payload(ranking.payload, 4),
    )
    assert [row["num_samples"] for row in samples] == [25, 50, 75, 100, 125]
    assert calls == ["num_samples_75_neurons.json"]  # stage 2 runs only where no result file exists
    assert next(row for row in samples if row["num_samples"] == 75)["critical_records"] == 4


def test_summarize_cli_writes_markdown_csv_and_json(tmp_path):
    write_ablation(tmp_path)
    output = tmp_path / "noise_scale_summary.md"
    files = [tmp_path / f"noise_scale_{alpha}_neurons.json" for alpha in (1, 3, 5, 7, 10)]
    run_script("ablation/summarize.py", "--rankings", *files, "--default", files[2], "--top_k", 10, "--output", output, check=True)
    table = [line for line in output.read_text().splitlines() if line.startswith("| smollm2-135m | noise_scale_")]
    assert len(table) == 5
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert [row["noise_scale"] for row in rows] == ["1", "3", "5", "7", "10"] and rows[2]["overlap"] == "1.0"
    summary = json.loads(output.with_suffix(".json").read_text())
    assert summary["kind"] == "ablation_summary" and summary["method"] == "noise_scale" and summary["model"] == model_block()
    assert [row["setting"] for row in summary["rows"]] == [f"noise_scale_{alpha}" for alpha in (1, 3, 5, 7, 10)]
    bad = run_script("ablation/summarize.py", "--rankings", tmp_path / "missing.json", "--default", files[2], "--output", tmp_path / "bad.md")
    assert bad.returncode == 2 and "--rankings" in bad.stderr and not list(tmp_path.glob("bad.*"))


@pytest.mark.parametrize(
    ("flags", "flag"),
    [(("--top_k", "0"), "--top_k"), (("--max_magnitude", "0"), "--max_magnitude"), (("--max_magnitude", "nan"), "--max_magnitude"), (("--max_magnitude", "inf"), "--max_magnitude")],
)
def test_summarize_refuses_bad_numbers_in_one_line(tmp_path, flags, flag):
    write_ablation(tmp_path)
    default = tmp_path / "noise_scale_5_neurons.json"
    result = run_script("ablation/summarize.py", "--rankings", default, "--default", default, "--output", tmp_path / "s.md", *flags)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and flag in lines[0] and not list(tmp_path.glob("s.*"))


def test_summarize_refuses_to_overwrite_a_ranking_and_stage2_results(tmp_path):
    write_ablation(tmp_path)
    default = tmp_path / "noise_scale_5_neurons.json"
    before = default.read_text()
    result = run_script("ablation/summarize.py", "--rankings", default, "--default", default, "--output", tmp_path / "noise_scale_5_neurons.md")
    assert result.returncode == 2 and "--output" in result.stderr and default.read_text() == before
    stage2 = run_script("ablation/summarize.py", "--rankings", tmp_path / "noise_scale_5_critical.json", "--default", default, "--output", tmp_path / "s.md")
    assert stage2.returncode == 2 and "not a ranking" in stage2.stderr


def test_summarize_runs_stage2_through_the_core(tiny_model_path, tmp_path):
    channels = [("model.layers.1.mlp.down_proj", 3), ("model.layers.0.mlp.down_proj", 5), ("model.layers.1.self_attn.o_proj", 1)]
    for name in ("a", "b"):  # files in the authors' format: no kind, no model block (compared with a warning)
        payload = ranking_payload(channels if name == "a" else channels[::-1])
        del payload["kind"], payload["model"]
        write(tmp_path / f"{name}_neurons.json", payload)
    output = tmp_path / "summary.md"
    run_script(
        "ablation/summarize.py", "--rankings", tmp_path / "a_neurons.json", tmp_path / "b_neurons.json", "--default", tmp_path / "a_neurons.json",
        "--model_path", tiny_model_path("llama"), "--output", output, check=True,
    )
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert len(rows) == 2 and all(1 <= int(row["critical_records"]) <= 6 for row in rows)


def evaluation(method, metric, entries, model=None, neuron_method=None, reference_metric=None):
    """An evaluator result as critical_neurons.evaluation.evaluator_cli writes it (the parts the report reads)."""
    return {"kind": "evaluation", "method": method, "primary_metric": metric, "reference_metric": reference_metric, "model": model or model_block(),
            "model_info": {"model_path": "models/x", "neuron_file": "neurons/x.json", "neuron_method": neuron_method}, "dataset_info": {}, "results": entries}


def random_masking(levels, model=None, offset=0.0):
    return {
        "kind": "random_masking", "method": "random_sites", "primary_metric": "mean_perplexity", "model": model or model_block(),
        "model_info": {}, "dataset_info": {}, "experiment_info": {"num_runs": 3},
        "results": [{"masking_level": level, "mean_perplexity": 80.0 + offset + level / 100, "std_perplexity": 1.5, "log10_mean_perplexity": np.log10(80.0 + offset + level / 100),
                     "min_log10_perplexity": 1.89, "max_log10_perplexity": 1.95} for level in levels],
    }


SWEEP_LEVELS = [0, *range(100, 1001, 100)]


def write_model_results(results, model, ours, shift=0.0):
    """One model's results: its stage-2 result, ours/AM/GM sweeps, random masking and before/after evaluations."""
    name = Path(model["path"]).name
    write(results / f"{name}_critical.json", stage2_payload(ours, 1))

    def sweep(file_name, neuron_method, log10_at):
        entries = [{"masking_level": level, "neurons_masked": level, "distinct_channels_masked": level // 3,
                    "perplexity": 10 ** log10_at(level) if log10_at(level) < 300 else None, "log10_perplexity": log10_at(level)} for level in SWEEP_LEVELS]
        write(results / file_name, evaluation("wikitext", "perplexity", entries, model, neuron_method))

    sweep(f"{name}_ours_comparison.json", "multi_gpu_activation_difference_analysis", lambda level: 1.9 + shift + (400.0 if level else 0.0))
    sweep(f"{name}_am_comparison.json", "multi_gpu_activation_value_analysis", lambda level: 1.9 + shift + level / 200)
    sweep(f"{name}_gm_comparison.json", "multi_gpu_gradient_based_analysis", lambda level: 1.9 + shift + level / 1000)
    write(results / f"{name}_random_masking.json", random_masking(SWEEP_LEVELS, model, offset=shift))
    write(results / f"{name}_wikitext.json", evaluation("wikitext", "perplexity", [
        {"masking_level": 0, "perplexity": 20.5, "log10_perplexity": 1.31, "reference_perplexity": 19.0, "reference_log10_perplexity": 1.2788},
        {"masking_level": 1, "perplexity": None, "log10_perplexity": 350.2 + shift, "reference_perplexity": None, "reference_log10_perplexity": 349.0 + shift}],
        model, "prefix_search", "reference_perplexity"))
    write(results / f"{name}_mmlu_pro.json", evaluation("mmlu_pro", "overall_accuracy", [
        {"masking_level": 0, "overall_accuracy": 0.31, "extraction_rate": 0.9, "total_samples": 10, "reference": {"overall_accuracy": 0.35}},
        {"masking_level": 1, "overall_accuracy": 0.0, "extraction_rate": 0.1, "total_samples": 10, "reference": {"overall_accuracy": 0.1}}],
        model, "prefix_search", "reference.overall_accuracy"))


def write_results(tmp_path):
    neurons, results, ablation = tmp_path / "neurons", tmp_path / "results", tmp_path / "results" / "ablation"
    ours = write(neurons / "importance_ranked_neurons.json", ranking_payload(channel_order(0, 1.0)))
    write_model_results(results, model_block(), json.loads(ours.read_text()))
    (results / "broken.json").write_text("{not json")
    write_ablation(ablation)
    return neurons, results, ablation


def run_report(tmp_path, neurons, results, ablation, *extra):
    out, assets = tmp_path / "report", tmp_path / "assets"
    result = run_script("ablation/report.py", "--neurons_dir", neurons, "--results_dir", results, "--ablation_dir", ablation,
                        "--output_dir", out, "--assets_dir", assets, "--top_k", 10, *extra)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return out, assets, result


def test_report_writes_tables_and_figures(tmp_path):
    neurons, results, ablation = write_results(tmp_path)
    out, assets, result = run_report(tmp_path, neurons, results, ablation)
    assert [line for line in result.stderr.splitlines() if "WARNING" in line] == [
        line for line in result.stderr.splitlines() if f"Skipping {results / 'broken.json'}: not valid JSON" in line
    ]
    for stem in ("critical_neurons", "before_after", "baselines", "ablation_noise_scale", "ablation_num_samples"):
        assert (out / f"{stem}.md").read_text().startswith("### ") and (out / f"{stem}.csv").is_file()
    baselines = list(csv.DictReader((out / "baselines.csv").open()))
    assert [int(row["level"]) for row in baselines] == SWEEP_LEVELS and {(row["model"], row["task"]) for row in baselines} == {("smollm2-135m", "wikitext")}
    assert baselines[1]["ours"] == "7.94e401" and baselines[1]["random"].startswith("81 ± 1.5") and baselines[1]["AM"] and baselines[1]["GM"]
    before_after = {row["task"]: row for row in csv.DictReader((out / "before_after.csv").open())}
    assert before_after["wikitext"]["after"] == "1.58e350" and before_after["mmlu_pro"]["before"] == "0.31" and before_after["mmlu_pro"]["metric"] == "overall_accuracy"
    # The authors' metric stands beside the corrected one.
    assert before_after["mmlu_pro"]["reference_metric"] == "reference.overall_accuracy"
    assert (before_after["mmlu_pro"]["reference_before"], before_after["mmlu_pro"]["reference_after"]) == ("0.35", "0.1")
    assert (before_after["wikitext"]["reference_before"], before_after["wikitext"]["reference_after"]) == ("19", "1.00e349")
    assert len([line for line in (out / "ablation_noise_scale.md").read_text().splitlines() if "| noise_scale_" in line]) == 5
    report = (out / "report.md").read_text()
    for figure in ("perplexity_vs_neurons_masked", "critical_neuron_locations", "ablation_agreement"):
        png = assets / f"{figure}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"({os.path.relpath(png, out)})" in report


def test_ablation_scripts_parse():
    for script in ("noise_scale.sh", "num_samples.sh", "input_texts.sh", "reproduce_default.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "ablation" / script)], check=True)
    texts = {path.stem for path in (ROOT / "ablation" / "texts").glob("*.txt")}
    assert {"bookends", "wikipedia", "code", "dialogue", "french", "chinese", "too_short"} <= texts


def test_too_short_input_text_is_refused(tiny_model_path, tmp_path):
    text = (ROOT / "ablation" / "texts" / "too_short.txt").read_text().strip()
    output = tmp_path / "short.json"
    env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, str(ROOT / "method" / "1_importance_evaluation.py"), "--model_path", str(tiny_model_path("llama")),
         "--input_text", text, "--num_samples", "2", "--log_level", "ERROR", "--output_file", str(output)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --input_text") and "10" in lines[0]
    assert not output.exists()
