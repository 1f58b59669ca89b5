"""The generation plan: compiled (static cache, padded batches) against eager greedy decoding, compiled
graphs following folded weights level after level, the auto batch probe, and what a run records."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import ROOT, assert_usage_error, run_script

from critical_neurons.errors import UsageError
from critical_neurons.evaluation import generation
from critical_neurons.evaluation.generation import generate, largest_batch, plan_generation
from critical_neurons.model.folding import folded
from critical_neurons.model.loading import load_model
from critical_neurons.outputs.records import Channel

PROMPTS = ["The polar bear is a large", "def add(a, b):", "Question: What is the capital", "Later reviews", "Les ours polaires"]
MMLU_PRO = ROOT / "tests" / "fixtures" / "mmlu_pro_test.jsonl"
# Compiled kernels sum in another order than eager ones: float32 logits agree to rounding, relative to the largest |logit|.
LOGIT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def llama(tiny_model_path):
    return load_model(str(tiny_model_path("llama")), "float32", None)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_compiled_greedy_tokens_equal_the_eager_path(tiny_model_path, family, monkeypatch):
    """Static cache + compiled decode + a padded last batch (5 prompts in batches of 2) give today's tokens,
    every batch decoding into the same cache tensors (new addresses would record the CUDA graph again)."""
    model, tokenizer = load_model(str(tiny_model_path(family)), "float32", None)
    eager = generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=2, progress=False)
    caches = []
    model_generate = model.generate

    def recording_generate(**kwargs):
        sequences = model_generate(**kwargs)
        cache = kwargs[generation.CACHE_ARGUMENT]
        caches.append((id(cache), cache.layers[0].keys.data_ptr()))
        return sequences

    monkeypatch.setattr(model, "generate", recording_generate)
    compiled = generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=2, compile=True, progress=False)
    assert compiled == eager
    assert len(set(eager)) > 1  # the prompts give different continuations: the order is checked too
    assert len(caches) == 3 and len(set(caches)) == 1


def _greedy_logits(model, tokenizer, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens and every step's logits of one greedy batch (steps after the first come from the decode forward)."""
    input_ids, attention_mask = generation.pad_batch(tokenizer(PROMPTS[:4])["input_ids"], tokenizer.pad_token_id, left=True)
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id,
        output_logits=True, return_dict_in_generate=True, **options,
    )
    return out.sequences, torch.stack(out.logits, 1).float()


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_one_compiled_model_follows_every_levels_folded_weights_and_their_restore(llama):
    """Compiled once, reused: each level's folded weights (edited in place) reach the compiled decode step,
    whose logits equal the eager folded model's; after the restore they are the unmasked ones again."""
    model, tokenizer = llama
    levels = [
        [],
        [Channel("model.layers.0.mlp.down_proj", 3), Channel("model.layers.1.self_attn.o_proj", 5)],
        [Channel(f"model.layers.{layer}.mlp.down_proj", channel) for layer in (0, 1) for channel in range(0, 32, 2)],
        [],
    ]
    first_unmasked, caches = None, set()
    for index, channels in enumerate(levels):
        with folded(model, channels):
            eager_tokens, eager_logits = _greedy_logits(model, tokenizer, disable_compile=True)
            compiled_options = generation.static_cache_options(model, 4, 32)
            caches.add(id(compiled_options[generation.CACHE_ARGUMENT]))
            tokens, logits = _greedy_logits(model, tokenizer, **compiled_options)
        if index == 0:
            graphs = _graphs()
            first_unmasked = logits
        assert torch.equal(tokens, eager_tokens)
        scale = max(1.0, float(eager_logits.abs().max()))
        assert float((logits - eager_logits).abs().max()) <= LOGIT_TOLERANCE * scale
        if channels:  # the level changes the decode logits far beyond the tolerance: the check can fail
            assert float((logits - first_unmasked).abs().max()) > 100 * LOGIT_TOLERANCE * scale
    assert float((logits - first_unmasked).abs().max()) <= LOGIT_TOLERANCE * scale  # restored
    assert hasattr(model, "_compiled_call") and graphs >= 1  # the decode steps ran compiled
    assert _graphs() == graphs  # no level recompiled
    assert len(caches) == 1  # every level decoded into the one emptied cache


def test_the_run_cache_is_kept_across_calls_grown_when_too_short_and_replaced_for_another_batch_size(llama):
    model, _ = llama

    def cache(rows: int, length: int):
        return generation.run_cache(model, rows, length)

    first = cache(3, 40)
    assert cache(3, 20) is first  # shorter prompts: the same tensors
    longer = cache(3, 50)
    assert longer is not first and longer.layers[0].max_cache_len == 50
    assert cache(3, 40) is longer  # it never shrinks
    other_rows = cache(5, 40)
    assert other_rows is not longer and other_rows.layers[0].max_cache_len == 40


def _fake_out_of_memory(model, monkeypatch, fits: int) -> list[dict]:
    """model.generate raising out-of-memory above ``fits`` rows, recording what each probe asked for."""
    calls = []

    def fake_generate(**kwargs):
        calls.append({"rows": kwargs["input_ids"].shape[0], "prompt": kwargs["input_ids"].shape[1], "cache": kwargs["max_cache_len"]})
        if kwargs["input_ids"].shape[0] > fits:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")

    monkeypatch.setattr(model, "generate", fake_generate)
    return calls


def test_the_auto_probe_halves_until_the_full_length_batch_fits(llama, monkeypatch):
    model, tokenizer = llama
    calls = _fake_out_of_memory(model, monkeypatch, fits=5)
    assert largest_batch(model, limit=48, prompt_length=30, cache_length=94, pad_token_id=tokenizer.pad_token_id) == 3
    assert [call["rows"] for call in calls] == [48, 24, 12, 6, 3]
    assert all(call["prompt"] == 30 and call["cache"] == 94 for call in calls)  # the longest prompt into the full cache


def test_the_auto_probe_refuses_when_one_sequence_does_not_fit(llama, monkeypatch):
    model, tokenizer = llama
    _fake_out_of_memory(model, monkeypatch, fits=0)
    with pytest.raises(UsageError, match="--batch_size"):
        largest_batch(model, limit=4, prompt_length=30, cache_length=94, pad_token_id=tokenizer.pad_token_id)


def test_auto_on_a_gpu_probes_with_the_longest_prompt_and_at_most_the_prompt_count_after_releasing_the_cache(llama, monkeypatch):
    model, tokenizer = llama
    generation.run_cache(model, 2, 16)  # an earlier run's cache, still held
    calls = _fake_out_of_memory(model, monkeypatch, fits=2)
    monkeypatch.setattr(generation, "_on_cuda_only", lambda model: True)
    settings = plan_generation(model, tokenizer, PROMPTS, max_new_tokens=7, batch_size="auto", compile="off")
    longest = max(len(ids) for ids in tokenizer(PROMPTS)["input_ids"])
    assert settings.batch_size == 2 and not settings.compile
    assert calls[0] == {"rows": len(PROMPTS), "prompt": longest, "cache": longest + 7}
    assert model not in generation._run_caches  # released before the probe measured free memory


def test_off_the_gpu_auto_uses_the_fixed_default_with_one_warning(llama, caplog):
    model, tokenizer = llama
    with caplog.at_level(logging.WARNING):
        settings = plan_generation(model, tokenizer, PROMPTS, max_new_tokens=4, batch_size="auto")
    assert settings.batch_size == generation.DEFAULT_BATCH_SIZE and not settings.compile
    assert len([record for record in caplog.records if "--batch_size auto" in record.getMessage()]) == 1
    caplog.clear()
    assert plan_generation(model, tokenizer, PROMPTS, max_new_tokens=4).batch_size == generation.DEFAULT_BATCH_SIZE
    assert not caplog.records  # no size given: the CPU default, silently


def test_compile_resolution(llama):
    model, _ = llama
    assert not generation.resolve_compile(model, "auto", hooks=False)  # CPU
    assert generation.resolve_compile(model, "on", hooks=False)
    assert not generation.resolve_compile(model, "off", hooks=False)
    with pytest.raises(UsageError, match="--compile"):
        generation.resolve_compile(model, "on", hooks=True)


def _mmlu_pro(model, output, *extra):
    return run_script(
        "evaluation/mmlu_pro_evaluator.py", "--model_path", model, "--dataset_path", MMLU_PRO, "--max_samples", 3,
        "--max_new_tokens", 4, "--output_file", output, *extra,
    )


def test_the_chosen_batch_size_and_compile_setting_are_recorded_and_keyed(tiny_model_path, tmp_path):
    model = tiny_model_path("llama")
    output = tmp_path / "mmlu.json"
    result = _mmlu_pro(model, output, "--batch_size", "auto", "--masking_levels", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum("--batch_size auto" in line for line in result.stderr.splitlines()) == 1
    payload = json.loads(output.read_text())
    for settings in (payload["settings"], payload["run_key"]["settings"]):
        assert settings["batch_size"] == generation.DEFAULT_BATCH_SIZE and settings["compile"] is False
    # Another batch size is another run; auto again resumes with the recorded size.
    refused = _mmlu_pro(model, output, "--batch_size", "2", "--masking_levels", "0")
    assert_usage_error(refused, "--output_file")
    assert "settings" in refused.stderr
    resumed = _mmlu_pro(model, output, "--masking_levels", "0")
    assert resumed.returncode == 0 and "already in" in resumed.stderr


def test_compile_on_with_hooks_is_one_line(tiny_model_path, tmp_path):
    neurons = tmp_path / "neurons.json"
    record = {"layer_name": "model.layers.0.mlp.down_proj", "batch_idx": 0, "seq_idx": 0, "hidden_idx": 3, "activation_diff": 1.0}
    neurons.write_text(json.dumps({"top_neurons": [record]}))
    output = tmp_path / "mmlu.json"
    result = _mmlu_pro(tiny_model_path("llama"), output, "--neuron_file", neurons, "--masking_levels", "0,1", "--mask_mode", "hook", "--compile", "on")
    assert_usage_error(result, "--compile", output)
