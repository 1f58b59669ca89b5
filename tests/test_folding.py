"""Masks as weights: folding equals hooking on every family and site type, restores bit for bit, refuses what is not exact."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from critical_neurons.errors import UsageError
from critical_neurons.model import folding
from critical_neurons.model.folding import apply_folds, can_fold, check_fold, folded, plan_folds
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.model.sites import candidate_sites
from critical_neurons.outputs.records import Channel

FAMILIES = ["llama", "qwen2", "mistral", "phi3", "gemma", "gemma2", "gemma3", "gpt2"]
PROBE = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 64, 128, 11, 200, 31]])


def load(path, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()


def site_widths(model) -> dict[str, int]:
    """Output width of every default site plus every norm (Gemma-3's 4-D q_norm/k_norm included)."""
    widths: dict[str, int] = {}
    modules = dict(model.named_modules())

    def record(name):
        def hook(module, inputs, output):
            widths.setdefault(name, output.shape[-1])

        return hook

    handles = [modules[name].register_forward_hook(record(name)) for name in candidate_sites(model, "+norm|ln_")]
    with torch.no_grad():
        model(PROBE)
    for handle in handles:
        handle.remove()
    return widths


def by_site_type(widths: dict[str, int]) -> dict[str, list[Channel]]:
    """Site type (name without the layer number) -> three channels in every layer (first, middle + 1, last)."""
    groups: dict[str, list[Channel]] = {}
    for name, width in widths.items():
        kind = re.sub(r"\.\d+\.", ".N.", name)
        groups.setdefault(kind, []).extend(Channel(name, index) for index in sorted({1, width // 2 + 1, width - 1}))
    return groups


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(PROBE).logits.float()


def greedy(model) -> torch.Tensor:
    return model.generate(PROBE, attention_mask=torch.ones_like(PROBE), max_new_tokens=3, do_sample=False, pad_token_id=0)


def assert_logits_close(actual: torch.Tensor, expected: torch.Tensor, relative: float = 1e-4) -> None:
    tolerance = relative * max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters(remove_duplicate=False)}


def assert_unchanged(model, saved: dict[str, torch.Tensor], skip: set[str] = frozenset()) -> None:
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if name not in skip:
            assert torch.equal(parameter, saved[name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_fold_equals_hook_for_every_site_type(family, tiny_model_path):
    model = load(tiny_model_path(family))
    groups = by_site_type(site_widths(model))
    assert len(groups) >= 5
    unmasked = logits(model)
    for kind, channels in groups.items():
        with NeuronMasker(model, channels):
            hooked, hooked_tokens = logits(model), greedy(model)
        with folded(model, channels):
            weights, weights_tokens = logits(model), greedy(model)
        assert not torch.allclose(hooked, unmasked), f"{kind}: masking changed nothing, so the test would prove nothing"
        assert_logits_close(weights, hooked)
        assert torch.equal(weights_tokens, hooked_tokens), kind


@pytest.mark.parametrize("family", FAMILIES)
def test_every_site_at_once_restores_bit_exactly_and_touches_only_planned_parameters(family, tiny_model_path):
    model = load(tiny_model_path(family))
    channels = [channel for group in by_site_type(site_widths(model)).values() for channel in group]
    saved = snapshot(model)
    with NeuronMasker(model, channels):
        hooked = logits(model)
    with folded(model, channels) as edits:
        edited = {edit.parameter for edit in edits}
        assert_unchanged(model, saved, skip=edited)  # tied embeddings and lm_head among them
        assert any(not torch.equal(model.get_parameter(name), saved[name]) for name in edited)
        assert_logits_close(logits(model), hooked)
    assert_unchanged(model, saved)
    with pytest.raises(RuntimeError, match="inside"), folded(model, channels):
        raise RuntimeError("inside the context")
    assert_unchanged(model, saved)


def test_norm_entries_follow_the_norm_form(tiny_model_path):
    llama, gemma3, gpt2 = (load(tiny_model_path(family)) for family in ("llama", "gemma3", "gpt2"))
    [edit] = plan_folds(llama, [Channel("model.layers.0.post_attention_layernorm", 2)])
    assert (edit.parameter, edit.dim, edit.indices, edit.value) == ("model.layers.0.post_attention_layernorm.weight", 0, (2,), 0.0)
    [edit] = plan_folds(gemma3, [Channel("model.layers.0.post_attention_layernorm", 2)])
    assert edit.value == -1.0  # Gemma's x * (1 + w)
    assert [edit.value for edit in plan_folds(gemma3, [Channel("model.layers.0.self_attn.q_norm", 2)])] == [-1.0]
    assert [(edit.parameter, edit.value) for edit in plan_folds(gpt2, [Channel("transformer.h.0.ln_1", 2)])] == [
        ("transformer.h.0.ln_1.weight", 0.0), ("transformer.h.0.ln_1.bias", 0.0),
    ]


def test_projections_and_activations_edit_the_right_slices(tiny_model_path):
    llama, phi3, gpt2 = (load(tiny_model_path(family)) for family in ("llama", "phi3", "gpt2"))
    assert [(e.parameter, e.dim) for e in plan_folds(llama, [Channel("model.layers.1.mlp.act_fn", 5)])] == [("model.layers.1.mlp.down_proj.weight", 1)]
    assert [(e.parameter, e.dim) for e in plan_folds(phi3, [Channel("model.layers.0.mlp.activation_fn", 5)])] == [("model.layers.0.mlp.down_proj.weight", 1)]
    assert [(e.parameter, e.dim) for e in plan_folds(gpt2, [Channel("transformer.h.0.mlp.act", 5)])] == [("transformer.h.0.mlp.c_proj.weight", 0)]
    assert [(e.parameter, e.dim) for e in plan_folds(gpt2, [Channel("transformer.h.0.attn.c_attn", 5)])] == [
        ("transformer.h.0.attn.c_attn.weight", 1), ("transformer.h.0.attn.c_attn.bias", 0),
    ]
    # Phi-3's fused gate_up_proj: a gate channel and an up channel are both output rows.
    half = phi3.config.intermediate_size
    [edit] = plan_folds(phi3, [Channel("model.layers.0.mlp.gate_up_proj", 3), Channel("model.layers.0.mlp.gate_up_proj", half + 3)])
    assert (edit.dim, edit.indices) == (0, (3, half + 3))


def test_gate_and_up_halves_of_phi3_each_match_the_hook(tiny_model_path):
    model = load(tiny_model_path("phi3"))
    half = model.config.intermediate_size
    for index in (3, half + 3):
        channels = [Channel("model.layers.0.mlp.gate_up_proj", index)]
        with NeuronMasker(model, channels):
            hooked = logits(model)
        with folded(model, channels):
            assert_logits_close(logits(model), hooked)


@pytest.mark.parametrize(("family", "site"), [("llama", "model.layers.0.self_attn"), ("llama", "model.rotary_emb"), ("gpt2", "transformer.h.0.attn"), ("gemma3", "model.layers.0.mlp")])
def test_unfoldable_site_is_refused_in_one_line(family, site, tiny_model_path):
    model = load(tiny_model_path(family))
    saved = snapshot(model)
    channels = [Channel(site, 0)]
    assert not can_fold(model, channels)
    with pytest.raises(UsageError) as error:
        plan_folds(model, channels)
    message = str(error.value)
    assert "\n" not in message and message.startswith("--mask_mode: ") and f"{site} cannot be folded" in message and message.endswith("use --mask_mode hook")
    with pytest.raises(UsageError), folded(model, channels):
        pass
    assert_unchanged(model, saved)


def test_tied_embedding_is_never_edited(tiny_model_path):
    model = load(tiny_model_path("gemma"))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    saved = snapshot(model)
    channels = [Channel("lm_head", 7)]
    with pytest.raises(UsageError, match=r"lm_head cannot be folded .*tied to model\.embed_tokens\.weight"):
        plan_folds(model, channels)
    with pytest.raises(UsageError), folded(model, channels):
        pass
    assert_unchanged(model, saved)


def test_any_shared_parameter_is_refused(tiny_model_path):
    model = load(tiny_model_path("llama"))
    first, second = model.model.layers[0].mlp, model.model.layers[1].mlp
    second.down_proj.weight = first.down_proj.weight  # one Parameter under two names
    second.up_proj.weight = nn.Parameter(first.up_proj.weight.data)  # two Parameters over one storage
    saved = snapshot(model)
    for channels in ([Channel("model.layers.1.mlp.act_fn", 2)], [Channel("model.layers.0.mlp.down_proj", 2)], [Channel("model.layers.1.mlp.up_proj", 2)]):
        with pytest.raises(UsageError, match="tied to"):
            plan_folds(model, channels)
    assert_unchanged(model, saved)
    assert can_fold(model, [Channel("model.layers.1.mlp.gate_proj", 2)])


def test_out_of_range_activation_channel_names_the_neuron_file(tiny_model_path):
    model = load(tiny_model_path("llama"))
    with pytest.raises(UsageError, match=r"^--neuron_file: channel 64 is out of range for model\.layers\.0\.mlp\.act_fn \(64 channels\)"):
        plan_folds(model, [Channel("model.layers.0.mlp.act_fn", 64)])


def test_apply_folds_is_permanent_and_equals_the_hook(tiny_model_path):
    model = load(tiny_model_path("qwen2"))
    channels = [Channel("model.layers.0.mlp.down_proj", 3), Channel("model.layers.1.mlp.act_fn", 9), Channel("model.layers.1.post_attention_layernorm", 4)]
    with NeuronMasker(model, channels):
        hooked = logits(model)
    edits = apply_folds(model, channels)
    assert {edit.site for edit in edits} == {channel.layer_name for channel in channels}
    assert_logits_close(logits(model), hooked)
    assert not model.model.layers[0].mlp.down_proj.weight[3].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_check_fold_records_the_comparison(family, dtype, tiny_model_path):
    model = load(tiny_model_path(family), dtype)
    channels = [channel for group in by_site_type(site_widths(model)).values() for channel in group[:2]]
    result = check_fold(model, PROBE, channels)
    assert result["passed"] and result["probe_tokens"] == PROBE.shape[1] and result["dtype"] == str(dtype).removeprefix("torch.")
    assert result["max_abs_diff"] <= result["tolerance"] == pytest.approx(folding.FOLD_TOLERANCE[dtype] * max(1.0, result["logit_scale"]))


def test_check_fold_encodes_a_text_with_a_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    path = tiny_model_path("gpt2")
    result = check_fold(load(path), AutoTokenizer.from_pretrained(path), [Channel("transformer.h.1.mlp.act", 3)], max_tokens=16)
    assert result["passed"] and result["probe_tokens"] == 16


def test_failed_fold_check_is_an_error(tiny_model_path, monkeypatch):
    model = load(tiny_model_path("llama"))
    monkeypatch.setattr(folding, "folded", lambda model, channels, **flags: NeuronMasker(model, []))  # a "fold" that masks nothing
    with pytest.raises(UsageError, match=r"^--mask_mode: the folded weights do not reproduce the hooked model"):
        check_fold(model, PROBE, [Channel("model.layers.0.mlp.down_proj", 3)])
