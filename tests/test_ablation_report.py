"""Ablation summariser, report tables and figures on small synthetic result files; the too-short text refusal."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_script
from critical_neurons.reporting import ablation_rows, compare_rankings, kendall_tau_b, layer_and_type, spearman
from critical_neurons.records import Channel

LAYERS, WIDTH = 4, 8
TEXT = "Later reviews were more positive. In just over 29 minutes, Bookends is stunning in its vision."


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


def ranking_payload(channels, noise_scale=5.0, num_samples=100, method="multi_gpu_activation_difference_analysis"):
    records = [
        {"layer_name": name, "batch_idx": 0, "seq_idx": seq, "hidden_idx": hidden, "activation_diff": float(100 - rank)}
        for rank, ((name, hidden), seq) in enumerate((channel, seq) for channel in channels for seq in range(2))
    ]
    records.sort(key=lambda record: -record["activation_diff"])
    return {"method": method, "input_text": TEXT, "noise_scale": noise_scale, "num_samples": num_samples, "num_tokens": 20,
            "total_neurons": len(records), "top_neurons": records}


def stage2_payload(ranking, count, model_path="models/smollm2-135m"):
    return {
        "baseline_perplexity": 82.1, "test_text": TEXT, "step_size": 1, "max_magnitude_increase": 1.0,
        "masking_steps": [{"step": 1, "neurons_masked": count, "log10_perplexity": 6.3, "magnitude_increase": 4.4, "masked_perplexity": 2e6}],
        "final_masked_neurons": ranking["top_neurons"][:count], "stopping_reason": "magnitude_increase_exceeded",
        "model_info": {"model_path": model_path},
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


def test_ablation_rows_one_per_setting(tmp_path):
    write_ablation(tmp_path)
    alpha = ablation_rows(sorted(tmp_path.glob("noise_scale_*_neurons.json")), tmp_path / "noise_scale_5_neurons.json", top_k=10)
    assert [row["noise_scale"] for row in alpha] == [1, 3, 5, 7, 10]
    default = next(row for row in alpha if row["is_default"])
    assert default["overlap"] == 1.0 and default["spearman"] == pytest.approx(1.0) and default["critical_records"] == 3 and default["critical_channels"] == 2
    assert all(row["critical_records"] is not None for row in alpha)

    calls = []
    samples = ablation_rows(
        sorted(tmp_path.glob("num_samples_*_neurons.json")), tmp_path / "num_samples_100_neurons.json",
        stage2=lambda path, ranking: calls.append(path.name) or stage2_payload(ranking, 4),
    )
    assert [row["num_samples"] for row in samples] == [25, 50, 75, 100, 125]
    assert calls == ["num_samples_75_neurons.json"]  # stage 2 runs only where no result file exists
    assert next(row for row in samples if row["num_samples"] == 75)["critical_records"] == 4


def test_summarize_cli_writes_markdown_and_csv(tmp_path):
    write_ablation(tmp_path)
    output = tmp_path / "noise_scale_summary.md"
    files = [tmp_path / f"noise_scale_{alpha}_neurons.json" for alpha in (1, 3, 5, 7, 10)]
    run_script("ablation/summarize.py", "--rankings", *files, "--default", files[2], "--top_k", 10, "--output", output, check=True)
    table = [line for line in output.read_text().splitlines() if line.startswith("| noise_scale_")]
    assert len(table) == 5
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert [row["noise_scale"] for row in rows] == ["1", "3", "5", "7", "10"] and rows[2]["overlap"] == "1.0"
    bad = run_script("ablation/summarize.py", "--rankings", tmp_path / "missing.json", "--default", files[2], "--output", tmp_path / "bad.md")
    assert bad.returncode == 2 and "--rankings" in bad.stderr and not (tmp_path / "bad.md").exists()


def test_summarize_runs_stage2_through_the_core(tiny_model_path, tmp_path):
    channels = [("model.layers.1.mlp.down_proj", 3), ("model.layers.0.mlp.down_proj", 5), ("model.layers.1.self_attn.o_proj", 1)]
    for name in ("a", "b"):
        write(tmp_path / f"{name}_neurons.json", ranking_payload(channels if name == "a" else channels[::-1]))
    output = tmp_path / "summary.md"
    run_script(
        "ablation/summarize.py", "--rankings", tmp_path / "a_neurons.json", tmp_path / "b_neurons.json", "--default", tmp_path / "a_neurons.json",
        "--model_path", tiny_model_path("llama"), "--output", output, check=True,
    )
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert len(rows) == 2 and all(1 <= int(row["critical_records"]) <= 6 for row in rows)


def write_results(tmp_path):
    neurons, results, ablation = tmp_path / "neurons", tmp_path / "results", tmp_path / "results" / "ablation"
    ours = write(neurons / "importance_ranked_neurons.json", ranking_payload(channel_order(0, 1.0)))
    write(results / "critical_neurons_result.json", stage2_payload(json.loads(ours.read_text()), 1))
    levels = [0, *range(100, 1001, 100)]

    def sweep(name, neuron_file, log10_at):
        entries = [{"masking_level": level, "neurons_masked": level, "distinct_channels_masked": level // 3,
                    "perplexity": 10 ** log10_at(level) if log10_at(level) < 300 else None, "log10_perplexity": log10_at(level)} for level in levels]
        write(results / name, {"model_info": {"model_path": "models/smollm2-135m", "neuron_file": str(neuron_file)},
                               "dataset_info": {"dataset_type": "WikiText"}, "results": entries})

    sweep("ours_comparison_results.json", ours, lambda level: 1.9 + (400.0 if level else 0.0))
    sweep("am_comparison_results.json", neurons / "activation_ranked_neurons.json", lambda level: 1.9 + level / 200)
    sweep("gm_comparison_results.json", neurons / "gradient_ranked_neurons.json", lambda level: 1.9 + level / 1000)
    write(results / "random_masking_results.json", {
        "model_info": {"model_path": "models/smollm2-135m"}, "dataset_info": {}, "experiment_info": {"num_runs": 3},
        "results": [{"masking_level": level, "mean_perplexity": 80.0 + level / 100, "std_perplexity": 1.5, "log10_mean_perplexity": np.log10(80.0 + level / 100),
                     "min_log10_perplexity": 1.89, "max_log10_perplexity": 1.95} for level in levels],
    })
    write(results / "wikitext_results.json", {"model_info": {"model_path": "models/smollm2-135m", "neuron_file": "results/critical_neurons_result.json"},
                                              "dataset_info": {"dataset_type": "WikiText"},
                                              "results": [{"masking_level": 0, "perplexity": 20.5, "log10_perplexity": 1.31}, {"masking_level": 1, "perplexity": None, "log10_perplexity": 350.2}]})
    write(results / "mmlu_pro_results.json", {"model_info": {"model_path": "models/smollm2-135m"}, "dataset_info": {},
                                              "results": [{"masking_level": 0, "overall_accuracy": 0.31, "extraction_rate": 0.9, "total_samples": 10}, {"masking_level": 1, "overall_accuracy": 0.0, "extraction_rate": 0.1, "total_samples": 10}]})
    (results / "broken.json").write_text("{not json")
    write_ablation(ablation)
    return neurons, results, ablation


def test_report_writes_tables_and_figures(tmp_path):
    neurons, results, ablation = write_results(tmp_path)
    out, assets = tmp_path / "report", tmp_path / "assets"
    run_script("ablation/report.py", "--neurons_dir", neurons, "--results_dir", results, "--ablation_dir", ablation,
               "--output_dir", out, "--assets_dir", assets, "--top_k", 10, check=True)
    for stem in ("critical_neurons", "before_after", "baselines", "ablation_noise_scale", "ablation_num_samples"):
        assert (out / f"{stem}.md").read_text().startswith("### ") and (out / f"{stem}.csv").is_file()
    baselines = list(csv.DictReader((out / "baselines.csv").open()))
    assert [int(row["level"]) for row in baselines] == [0, *range(100, 1001, 100)]
    assert baselines[1]["ours"] == "7.94e401" and baselines[1]["random"].startswith("81 ± 1.5") and baselines[1]["AM"] and baselines[1]["GM"]
    before_after = {row["task"]: row for row in csv.DictReader((out / "before_after.csv").open())}
    assert before_after["WikiText"]["after"] == "1.58e350" and before_after["mmlu_pro"]["before"] == "0.31" and before_after["mmlu_pro"]["metric"] == "overall_accuracy"
    assert len([line for line in (out / "ablation_noise_scale.md").read_text().splitlines() if line.startswith("| noise_scale_")]) == 5
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
