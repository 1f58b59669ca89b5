"""method/4_export_lesioned_model.py: a standard HF folder, only edited shards rewritten, the source never touched."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import assert_usage_error, build_tokenizer, neuron_file, run_script
from safetensors import SafetensorError
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from critical_neurons.model.folding import BOOKENDS_TEXT
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.model.perplexity import perplexity
from critical_neurons.outputs.records import Channel
from critical_neurons.outputs.run_identity import model_identity

SCRIPT = "method/4_export_lesioned_model.py"
TEXT = "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice."
PROBE = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 64, 128, 11, 200, 31]])
LLAMA_CHANNELS = [Channel("model.layers.0.mlp.down_proj", 3), Channel("model.layers.1.mlp.act_fn", 5), Channel("model.layers.1.post_attention_layernorm", 7)]


def hashes(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir()) if path.is_file()}


def stage2_file(folder: Path, channels: list[Channel], text: str = TEXT) -> Path:
    """A Stage-2 result as method/2 writes it (the keys the export reads)."""
    path = folder / "critical.json"
    records = [{"layer_name": name, "batch_idx": 0, "seq_idx": 0, "hidden_idx": index, "activation_diff": 1.0} for name, index in channels]
    path.write_text(json.dumps({"final_masked_neurons": records, "test_text": text, "stopping_reason": "magnitude_increase_exceeded"}))
    return path


def hooked_logits(folder: Path, channels: list[Channel]) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad(), NeuronMasker(model, channels):
        return model(PROBE).logits


def plain_logits(folder: Path) -> torch.Tensor:
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(folder).eval()(PROBE).logits


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4 * max(1.0, float(expected.abs().max())))


@pytest.fixture(scope="module")
def sharded_source(tiny_model_path, tmp_path_factory) -> Path:
    """The tiny Llama saved in 20 KB shards, with the files an export must not carry over."""
    folder = tmp_path_factory.mktemp("sharded") / "source"
    AutoModelForCausalLM.from_pretrained(tiny_model_path("llama")).save_pretrained(folder, max_shard_size="20KB")
    build_tokenizer(folder)
    (folder / "README.md").write_text("the source's own card\n")
    save_file({"unlesioned": torch.zeros(2)}, folder / "consolidated.safetensors")  # original-format weights beside the HF shards
    (folder / "original").mkdir()
    return folder


def edited_shards(source: Path, parameters: set[str]) -> set[str]:
    weight_map = json.loads((source / "model.safetensors.index.json").read_text())["weight_map"]
    return {weight_map[name] for name in parameters}


def test_export_rewrites_only_the_shards_holding_edited_tensors(sharded_source, tmp_path):
    before = hashes(sharded_source)
    output = tmp_path / "lesioned"
    run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", stage2_file(tmp_path, LLAMA_CHANNELS), "--output_dir", output, check=True)
    assert hashes(sharded_source) == before
    lesion = json.loads((output / "lesion.json").read_text())
    rewritten = edited_shards(sharded_source, {edit["parameter"] for edit in lesion["edits"]})
    assert 1 < len(rewritten) < len([name for name in before if name.startswith("model-")])
    exported = hashes(output)
    assert set(exported) == set(before) - {"consolidated.safetensors"} | {"lesion.json"}
    for name, digest in exported.items():
        if name in rewritten or name in ("config.json", "README.md", "lesion.json"):
            assert digest != before.get(name), name
        else:
            assert digest == before[name], name
    config, source_config = (json.loads((folder / "config.json").read_text()) for folder in (output, sharded_source))
    assert config.pop("lesion")["num_channels"] == 3 and config == source_config
    assert lesion["files"]["mode"] == "rewrite_shards" and sorted(lesion["files"]["rewritten"]) == sorted(rewritten)
    assert lesion["files"]["skipped"] == ["consolidated.safetensors", "original"]
    umask = os.umask(0)
    os.umask(umask)
    assert {(output / name).stat().st_mode & 0o777 for name in rewritten} == {0o666 & ~umask}

    assert_close(plain_logits(output), hooked_logits(sharded_source, LLAMA_CHANNELS))
    source_model = AutoModelForCausalLM.from_pretrained(sharded_source)
    assert lesion["kind"] == "lesion" and lesion["model"] == model_identity(source_model, str(sharded_source))
    assert lesion["channels"] == [channel._asdict() for channel in LLAMA_CHANNELS] and lesion["neuron_file_kind"] == "critical_set"
    assert lesion["fold_check"]["passed"] and lesion["fold_check"]["max_abs_diff"] <= lesion["fold_check"]["tolerance"]
    assert {edit["value"] for edit in lesion["edits"]} == {0.0}
    exported_model, tokenizer = AutoModelForCausalLM.from_pretrained(output), AutoTokenizer.from_pretrained(output)
    tokenizer.pad_token = tokenizer.eos_token
    after = perplexity(exported_model, tokenizer, [TEXT], progress=False)
    assert lesion["perplexity"]["test_text"] == TEXT
    assert after.log10_perplexity == pytest.approx(lesion["perplexity"]["after"]["log10_perplexity"], abs=1e-5)
    assert model_identity(exported_model, str(output))["fingerprint"] != lesion["model"]["fingerprint"]
    card = (output / "README.md").read_text()
    assert f"lm_eval --model hf --model_args pretrained={output}" in card and f"vllm serve {output}" in card and "model.layers.1.mlp.act_fn" in card


def test_link_hard_links_the_unchanged_files(sharded_source, tmp_path):
    before = hashes(sharded_source)
    output = tmp_path / "linked"
    run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", stage2_file(tmp_path, LLAMA_CHANNELS[:1]), "--output_dir", output, "--link", check=True)
    assert hashes(sharded_source) == before
    lesion = json.loads((output / "lesion.json").read_text())
    [rewritten] = lesion["files"]["rewritten"]
    assert rewritten not in lesion["files"]["linked"] and "copied" not in lesion["files"]
    for name in lesion["files"]["linked"]:
        assert os.path.samefile(output / name, sharded_source / name), name
    assert not os.path.samefile(output / rewritten, sharded_source / rewritten)
    assert_close(plain_logits(output), hooked_logits(sharded_source, LLAMA_CHANNELS[:1]))


def test_a_ranking_needs_num_neurons(sharded_source, tmp_path):
    ranking = neuron_file(tmp_path, "model.layers.1.mlp.up_proj", 4)
    output = tmp_path / "out"
    assert_usage_error(run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", ranking, "--output_dir", output), "--num_neurons", output)
    assert_usage_error(run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", ranking, "--num_neurons", "0", "--output_dir", output), "--num_neurons", output)
    run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", ranking, "--num_neurons", "1", "--output_dir", output, check=True)
    lesion = json.loads((output / "lesion.json").read_text())
    assert lesion["neuron_file_kind"] == "ranking" and lesion["channels"] == [{"layer_name": "model.layers.1.mlp.up_proj", "hidden_idx": 4}]
    assert lesion["perplexity"]["test_text"] == BOOKENDS_TEXT


def test_bad_output_dirs_and_unfoldable_sites_write_nothing(sharded_source, tmp_path):
    before = hashes(sharded_source)
    critical = stage2_file(tmp_path, LLAMA_CHANNELS)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    result = run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", critical, "--output_dir", occupied)
    assert_usage_error(result, "--output_dir")
    assert "not empty" in result.stderr and sorted(os.listdir(occupied)) == ["keep.txt"]
    for inside in (sharded_source, sharded_source / "lesioned"):
        assert_usage_error(run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", critical, "--output_dir", inside), "--output_dir")
    output = tmp_path / "new" / "out"
    unfoldable = stage2_file(tmp_path, [Channel("model.layers.0.self_attn", 1)])
    result = run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", unfoldable, "--output_dir", output)
    assert_usage_error(result, "--neuron_file", output)
    assert "model.layers.0.self_attn cannot be folded" in result.stderr
    assert not (tmp_path / "new").exists() and hashes(sharded_source) == before and not (sharded_source / "lesioned").exists()


def test_empty_output_dir_is_filled(sharded_source, tmp_path):
    output = tmp_path / "empty"
    output.mkdir()
    run_script(SCRIPT, "--model_path", sharded_source, "--neuron_file", stage2_file(tmp_path, LLAMA_CHANNELS[:1]), "--output_dir", output, check=True)
    assert (output / "lesion.json").is_file() and not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize("writer", ["critical_neurons.model.export.save_file", "transformers.modeling_utils.safe_save_file"], ids=["rewritten_shard", "save_pretrained"])
def test_a_full_disk_is_one_line_and_leaves_nothing(writer, sharded_source, tiny_model_path, tmp_path, monkeypatch):
    """safetensors reports ENOSPC as its own error type, in both the shard rewrite and save_pretrained."""
    source = sharded_source
    if writer.startswith("transformers"):  # a .bin checkpoint is saved whole
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path("llama"))
        source = tmp_path / "bin"
        model.config.save_pretrained(source)
        build_tokenizer(source)
        torch.save(model.state_dict(), source / "pytorch_model.bin")

    def no_space(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(writer, no_space)
    output = tmp_path / "out" / "lesioned"
    result = run_script(SCRIPT, "--model_path", source, "--neuron_file", stage2_file(tmp_path, LLAMA_CHANNELS[:1]), "--output_dir", output)
    assert_usage_error(result, "--output_dir", output)
    assert "No space left on device" in result.stderr and os.listdir(output.parent) == []


def test_gpt2_checkpoint_without_prefix_keeps_its_layout(tiny_model_path, tmp_path):
    """Original GPT-2/DialoGPT checkpoints store ``h.0...`` for the model's ``transformer.h.0...``; Conv1D stores (in, out)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path("gpt2"))
    source = tmp_path / "gpt2"
    model.config.save_pretrained(source)
    build_tokenizer(source)
    save_file({name.removeprefix("transformer."): tensor.clone() for name, tensor in model.state_dict().items() if name != "lm_head.weight"}, source / "model.safetensors", metadata={"format": "pt"})
    channels = [Channel("transformer.h.0.attn.c_attn", 3), Channel("transformer.h.1.mlp.act", 5), Channel("transformer.h.1.ln_2", 2)]
    output = tmp_path / "out"
    run_script(SCRIPT, "--model_path", source, "--neuron_file", stage2_file(tmp_path, channels), "--output_dir", output, check=True)
    lesion = json.loads((output / "lesion.json").read_text())
    assert lesion["files"]["rewritten"] == ["model.safetensors"]
    assert_close(plain_logits(output), hooked_logits(source, channels))


def test_a_bin_checkpoint_is_saved_whole(tiny_model_path, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path("gemma"))
    source = tmp_path / "gemma"
    model.config.save_pretrained(source)
    build_tokenizer(source)
    torch.save(model.state_dict(), source / "pytorch_model.bin")
    before = hashes(source)
    channels = [Channel("model.layers.0.post_attention_layernorm", 2), Channel("model.layers.1.mlp.gate_proj", 9)]
    output = tmp_path / "out"
    critical = stage2_file(tmp_path, channels)
    assert_usage_error(run_script(SCRIPT, "--model_path", source, "--neuron_file", critical, "--output_dir", output, "--link"), "--link", output)
    run_script(SCRIPT, "--model_path", source, "--neuron_file", critical, "--output_dir", output, check=True)
    lesion = json.loads((output / "lesion.json").read_text())
    assert lesion["files"]["mode"] == "save_pretrained" and "model.safetensors" in lesion["files"]["written"]
    assert -1.0 in {edit["value"] for edit in lesion["edits"]}
    assert_close(plain_logits(output), hooked_logits(source, channels))
    assert hashes(source) == before


@pytest.mark.real_model
def test_exported_smollm2_critical_set_gives_the_stage2_perplexity(default_model_path, tmp_path):
    before = hashes(default_model_path)
    critical = tmp_path / "critical.json"
    run_script(
        "method/2_neuron_identification.py", "--model_path", default_model_path, "--neuron_file", neuron_file(tmp_path, "model.layers.11.mlp.down_proj", 507),
        "--test_text", BOOKENDS_TEXT, "--output_file", critical, check=True,
    )
    stage2 = json.loads(critical.read_text())
    assert stage2["critical_channels"] == [{"layer_name": "model.layers.11.mlp.down_proj", "hidden_idx": 507}]
    output = tmp_path / "smollm2-lesioned"
    run_script(SCRIPT, "--model_path", default_model_path, "--neuron_file", critical, "--output_dir", output, check=True)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(output), AutoTokenizer.from_pretrained(output)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    assert not model.model.layers[11].mlp.down_proj.weight[507].any()
    result = perplexity(model, tokenizer, [BOOKENDS_TEXT], progress=False)
    assert result.log10_perplexity == pytest.approx(stage2["masking_steps"][-1]["log10_perplexity"], abs=1e-3)
    lesion = json.loads((output / "lesion.json").read_text())
    assert lesion["perplexity"]["log10_increase"] > 4 and lesion["files"]["rewritten"] == ["model.safetensors"]
    assert hashes(default_model_path) == before
