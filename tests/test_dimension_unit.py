"""Stage 2's dimension unit: the residual-stream writers of every family, and a planted massive dimension found in one step."""

from __future__ import annotations

import json
import random
from itertools import combinations

import pytest
import torch
from conftest import assert_usage_error, build_tokenizer, run_script
from transformers import AutoModelForCausalLM, LlamaConfig

from critical_neurons.errors import UsageError
from critical_neurons.method.characterization import characterize
from critical_neurons.method.stage2 import MAGNITUDE_EXCEEDED, critical_prefix
from critical_neurons.model.loading import load_model
from critical_neurons.model.masking import NeuronMasker
from critical_neurons.model.perplexity import LN10, sequence_nll
from critical_neurons.model.residual import dimension_records, plan_dimensions, rank_dimensions, residual_writers
from critical_neurons.outputs.records import Channel, NeuronRecord
from critical_neurons.reporting.characterization_tables import markdown_tables
from critical_neurons.reporting.results import model_labels, read_result
from critical_neurons.reporting.tables import critical_set_rows

FAMILIES = ["llama", "qwen2", "mistral", "phi3", "gemma", "gemma2", "gemma3", "gpt2"]
TEXT = "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice."
EXPECTED_WRITERS = {
    "gpt2": ("attn.c_proj", "mlp.c_proj"),
    "gemma2": ("self_attn.o_proj", "post_attention_layernorm", "mlp.down_proj", "post_feedforward_layernorm"),
    "gemma3": ("self_attn.o_proj", "post_attention_layernorm", "mlp.down_proj", "post_feedforward_layernorm"),
}

# The plant, in a 4-layer Llama (hidden 32, 4 query heads of 8, 2 key/value heads). The first token
# alone carries marker dimension J; MLP unit K of layers 0, 1 and 2 reads J and their down_proj
# writes it into dimension P: a massive activation on the first token, written by three layers.
# Layer 3 reads P as an attention sink: every query (bias on head dimension 3, a slow rotary pair)
# meets the first token's key (which reads P only), whose value cancels the value bias, so the
# attention is a no-op. Masking P in all three writers breaks the sink: the value bias reaches
# o_proj, which writes dimension Z, which makes token X (absent from the text) win every position.
# Any one writer suffices for the sink (the first-token norm saturates on P), so none can be pruned.
# The decoy: layer 3's down_proj writes dimension Q, large, on the first token, and nothing reads Q.
LAYERS, PLANTED_LAYERS, DECOY_LAYER = 4, (0, 1, 2), 3
J, P, Q, Z, K, KQ = 9, 5, 20, 30, 7, 40
E, W, SINK_QUERY, SINK_KEY, VALUE_BIAS, SIGNAL, WRONG_LOGIT = 20.0, 5.0, 4.0, 3.0, 5.0, 10.0, 20.0


def planted_model(path):
    """Save the planted model and its tokenizer in ``path``; returns the model and the text's token ids."""
    tokenizer = build_tokenizer(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
        num_key_value_heads=2, attention_bias=True, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    first, wrong = int(ids[0, 0]), next(token for token in range(len(tokenizer)) if token not in ids[0].tolist())
    layers = model.model.layers
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2) if parameter.dim() == 2 else parameter.zero_()
        for norm in [model.model.norm] + [n for layer in layers for n in (layer.input_layernorm, layer.post_attention_layernorm)]:
            norm.weight.fill_(1.0)
        embeddings = model.model.embed_tokens.weight
        embeddings[:, [J, P, Q, Z]] = 0.0
        embeddings[first, J] = E
        for layer in layers:  # only the plant reads or writes J, P, Q and Z
            for reader in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.mlp.gate_proj, layer.mlp.up_proj):
                reader.weight[:, [J, P, Q, Z]] = 0.0
            for writer in (layer.self_attn.o_proj, layer.mlp.down_proj):
                writer.weight[[J, Q, Z]] = 0.0
                writer.weight[P] *= 0.1  # every layer writes a little into P at every position
        for index in PLANTED_LAYERS:
            mlp = layers[index].mlp
            mlp.gate_proj.weight[K, J] = mlp.up_proj.weight[K, J] = 1.0
            mlp.down_proj.weight[:, K] = 0.0
            mlp.down_proj.weight[P, K] = W
        decoy = layers[DECOY_LAYER].mlp
        decoy.gate_proj.weight[KQ, P] = decoy.up_proj.weight[KQ, P] = 1.0
        decoy.down_proj.weight[:, KQ] = 0.0
        decoy.down_proj.weight[Q, KQ] = W
        sink = layers[LAYERS - 1].self_attn
        for head in range(4):
            sink.q_proj.weight[8 * head + 3] = 0.0
            sink.q_proj.bias[8 * head + 3] = SINK_QUERY
        for head in range(2):
            sink.k_proj.weight[8 * head + 3] = 0.0
            sink.k_proj.weight[8 * head + 3, P] = SINK_KEY
        sink.v_proj.weight[0] = 0.0
        sink.v_proj.weight[0, P] = -VALUE_BIAS / 32**0.5  # the first token's normed P is sqrt(hidden)
        sink.v_proj.bias[0] = VALUE_BIAS
        sink.o_proj.weight[:, [0, 8]] = 0.0  # value channel 0 reaches query heads 0 and 1
        sink.o_proj.weight[Z, [0, 8]] = SIGNAL
        model.lm_head.weight[:, [P, Q, Z]] = 0.0
        model.lm_head.weight[wrong, Z] = WRONG_LOGIT
    model.save_pretrained(path)
    return model, ids


def log10_ppl(model, ids, channels) -> float:
    with NeuronMasker(model, channels):
        nll, tokens = sequence_nll(model, ids)
    return float(nll[0] / tokens[0]) / LN10


def writer(layer: int, dimension: int, kind: str = "mlp.down_proj") -> Channel:
    return Channel(f"model.layers.{layer}.{kind}", dimension)


PLANTED = [writer(layer, P) for layer in PLANTED_LAYERS]
DECOY = writer(DECOY_LAYER, Q)


def filler(rank: int) -> NeuronRecord:
    """A record of an MLP gate channel of layers 0-2 that no part of the plant uses."""
    return NeuronRecord(f"model.layers.{rank % 3}.mlp.gate_proj", 1 + rank, 10 + rank, 0.0)


def hand_set_ranking() -> list[NeuronRecord]:
    """A loud harmless channel on top (the decoy), the three planted writers spread among fillers (ranks 1, 6, 11)."""
    order = [DECOY, PLANTED[0], *range(4), PLANTED[1], *range(4, 8), PLANTED[2], *range(8, 12)]
    records = [filler(entry) if isinstance(entry, int) else NeuronRecord(entry.layer_name, 0, entry.hidden_idx, 0.0) for entry in order]
    return [NeuronRecord(r.layer_name, r.seq_idx, r.hidden_idx, 100.0 - 5 * rank) for rank, r in enumerate(records)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted")
    model, ids = planted_model(path)
    return path, model, ids


def test_writers_of_every_family_carry_the_whole_dimension(family, tiny_model_path):
    """Masking dimension d in every writer found leaves d of the residual stream at its embedding value through every layer."""
    model, tokenizer = load_model(str(tiny_model_path(family)))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    writers = residual_writers(model, ids)
    layers = model.config.num_hidden_layers
    expected = EXPECTED_WRITERS.get(family, ("self_attn.o_proj", "mlp.down_proj"))
    prefix = "transformer.h" if family == "gpt2" else "model.layers"
    assert writers == {f"{prefix}.{layer}.{name}": layer for layer in range(layers) for name in expected}
    dimension = 6
    with torch.no_grad():
        free = model(ids, output_hidden_states=True).hidden_states
        with NeuronMasker(model, [Channel(name, dimension) for name in writers]):
            held = model(ids, output_hidden_states=True).hidden_states
    assert not torch.equal(free[layers - 1][..., dimension], free[0][..., dimension])
    for state in held[:layers]:  # the last entry is the final norm's output
        assert torch.equal(state[..., dimension], held[0][..., dimension])
    assert residual_writers(model.to(torch.bfloat16), ids) == writers  # the same within bfloat16 rounding


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


def test_a_layer_that_scales_the_residual_is_refused(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    handle = model.model.layers[1].register_forward_hook(lambda module, args, output: output * 2)
    try:
        with pytest.raises(UsageError, match="--unit: layer 1 of this llama model"):
            residual_writers(model, ids)
    finally:
        handle.remove()


def test_the_plant_needs_all_three_writers_and_the_decoy_is_harmless(planted):
    _, model, ids = planted
    base = log10_ppl(model, ids, [])
    assert log10_ppl(model, ids, PLANTED) - base > 40
    for size in (1, 2):
        for subset in combinations(PLANTED, size):
            assert abs(log10_ppl(model, ids, list(subset)) - base) < 1
    assert abs(log10_ppl(model, ids, [DECOY]) - base) < 1
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    ratios = [float(state[0, 0, P].abs() / state[0].abs().median()) for state in hidden[1:LAYERS]]
    assert min(ratios) > 50 and max(ratios) > 100  # massive on the first token, from layer 0 on


def test_dimension_unit_finds_the_planted_dimension_in_one_step(planted):
    _, model, ids = planted
    ranking = hand_set_ranking()
    dimensions = rank_dimensions(ranking, residual_writers(model, ids))
    assert [dimension.index for dimension in dimensions[:2]] == [P, Q]  # 60 + 40 + 20 over the decoy's 100
    plan = plan_dimensions(model, ids, ranking)
    found = critical_prefix(model, ids, plan.records, unit_ends=plan.unit_ends, max_magnitude=5, prune=True, progress=False)
    assert found.stopping_reason == MAGNITUDE_EXCEEDED and len(found.steps) == 1
    assert set(found.channels) == {writer(layer, P, kind) for layer in range(LAYERS) for kind in ("self_attn.o_proj", "mlp.down_proj")}
    assert found.pruned_channels == PLANTED
    by_channel = critical_prefix(model, ids, ranking, max_magnitude=5, progress=False)
    assert by_channel.stopping_reason == MAGNITUDE_EXCEEDED and len(by_channel.steps) == 12  # the third writer is record 12


def test_dimension_steps_equal_masking_each_prefix_of_dimensions(planted):
    _, model, ids = planted
    dimensions = rank_dimensions(hand_set_ranking(), residual_writers(model, ids))[1:]  # without P: no collapse
    members, ends = dimension_records(dimensions)
    found = critical_prefix(model, ids, members, max_magnitude=40, unit_ends=ends, batch_size=2, progress=False)
    assert [step.neurons_masked for step in found.steps] == ends
    expected = [log10_ppl(model, ids, [member.channel for member in members[:end]]) for end in ends]
    assert [step.log10_perplexity for step in found.steps] == pytest.approx(expected, abs=1e-5)


def test_dimension_order_is_the_sum_of_each_writers_best_score():
    writers = {f"model.layers.{layer}.{kind}": layer for layer in range(3) for kind in ("self_attn.o_proj", "mlp.down_proj")}
    rng = random.Random(0)
    records = sorted(
        (NeuronRecord(rng.choice([*writers, "model.layers.0.mlp.up_proj"]), rng.randrange(9), rng.randrange(6), rng.uniform(0, 10)) for _ in range(300)),
        key=lambda record: -record.score,
    )
    slow = {}
    for dimension in range(6):
        best = {}
        for record in records:
            if record.hidden_idx == dimension and record.layer_name in writers:
                best[record.layer_name] = max(best.get(record.layer_name, 0.0), record.score)
        slow[dimension] = sum(best.values())
    dimensions = rank_dimensions(records, writers)
    assert [dimension.index for dimension in dimensions] == sorted(slow, key=lambda index: -slow[index])
    assert [dimension.score for dimension in dimensions] == pytest.approx(sorted(slow.values(), reverse=True))
    for dimension in dimensions:
        assert [member.layer_name for member in dimension.members][: len({r.layer_name for r in dimension.ranked})] == list(
            dict.fromkeys(record.layer_name for record in dimension.ranked)
        )
        assert sorted(member.layer_name for member in dimension.members) == sorted(writers)


def test_script_records_the_unit_and_the_dimension_view(planted, tmp_path):
    path, _, _ = planted
    ranking = tmp_path / "ranking.json"
    ranking.write_text(json.dumps({"top_neurons": [record.to_dict() for record in hand_set_ranking()]}))
    outputs = {unit: tmp_path / f"{unit}.json" for unit in ("channel", "dimension")}
    for unit, output in outputs.items():
        run_script("method/2_neuron_identification.py", "--model_path", path, "--neuron_file", ranking, "--test_text", TEXT, "--max_magnitude", "5",
                   "--unit", unit, "--prune", "--output_file", output, check=True)
    channel, dimension = (json.loads(output.read_text()) for output in outputs.values())
    assert (channel["unit"], channel["prune"], len(channel["masking_steps"])) == ("channel", True, 12) and "dimension_view" not in channel
    assert (dimension["unit"], dimension["prune"], len(dimension["masking_steps"])) == ("dimension", True, 1)
    assert dimension["num_critical_records"] == dimension["num_critical_channels"] == 2 * LAYERS
    view = dimension["dimension_view"]
    assert view["writers_per_layer"] == ["self_attn.o_proj", "mlp.down_proj"] and view["num_writers"] == 2 * LAYERS
    assert [(entry["dimension"], entry["step"]) for entry in view["masked_dimensions"]] == [(P, 1)]
    listed = {entry["layer_name"] for entry in view["masked_dimensions"][0]["writers"] if entry["in_ranking"]}
    assert listed == {channel.layer_name for channel in PLANTED}
    assert view["pruned_dimensions"] == [{"dimension": P, "writers": [channel.layer_name for channel in PLANTED], "layers": list(PLANTED_LAYERS)}]
    assert [Channel(**entry) for entry in dimension["pruned_channels"]] == PLANTED
    results = [read_result(output) for output in outputs.values()]
    rows = critical_set_rows(results, model_labels(results))
    assert [(row["unit"], row["steps"], row["pruned_channels"]) for row in rows] == [("channel", 12, 3), ("dimension", 1, 3)]


def test_scan_channels_with_the_dimension_unit_is_refused(planted, tmp_path):
    path, _, _ = planted
    ranking = tmp_path / "ranking.json"
    ranking.write_text(json.dumps({"top_neurons": [record.to_dict() for record in hand_set_ranking()]}))
    output = tmp_path / "out.json"
    result = run_script("method/2_neuron_identification.py", "--model_path", path, "--neuron_file", ranking, "--test_text", TEXT,
                        "--unit", "dimension", "--scan", "channels", "--output_file", output)
    assert_usage_error(result, "--scan", output)


def test_characterisation_reports_the_planted_dimension_its_positions_and_writers(planted):
    path, model, ids = planted
    tokenizer = build_tokenizer(path)
    writers = residual_writers(model, ids)
    outputs, modules = {}, dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda module, args, output, name=name: outputs.update({name: output[0].detach()})) for name in writers]
    with torch.no_grad():
        hidden = [state[0] for state in model(ids, output_hidden_states=True, use_cache=False).hidden_states]
    for handle in handles:
        handle.remove()
    result = characterize(model, tokenizer, ids, [*PLANTED, writer(0, 3, "mlp.up_proj")], num_random_sets=0, progress=False)
    (block,) = result["residual_dimensions"]  # up_proj does not write the residual stream
    assert block["dimension"] == P and block["critical_writers"] == [channel.layer_name for channel in PLANTED]
    # Slow reference: element by element, |h[p, P]| / median |h| per hidden state, and each writer's peak over its median.
    ratios = [[abs(float(state[position, P])) / slow_median(state.abs()) for state in hidden] for position in range(ids.shape[1])]
    massive = {position: [index for index, ratio in enumerate(row) if ratio >= 100] for position, row in enumerate(ratios)}
    assert [(entry["position"], entry["hidden_states"]) for entry in block["massive_positions"]] == [(p, states) for p, states in massive.items() if states]
    assert block["massive_positions"][0]["position"] == 0 and block["massive_positions"][0]["max_ratio_to_layer_median"] == pytest.approx(max(ratios[0]), rel=1e-5)
    peaks = {name: float(output[:, P].abs().max()) / slow_median(output.abs()) for name, output in outputs.items()}
    assert [entry["ratio_to_module_median"] for entry in block["writers"]] == pytest.approx([peaks[name] for name in writers], rel=1e-5)
    assert block["massive_writers"] == [name for name in writers if peaks[name] >= 100]
    assert PLANTED[0].layer_name in block["massive_writers"]
    table = markdown_tables(result)
    assert f"| {P} | {', '.join(channel.layer_name for channel in PLANTED)} | 0 " in table


def slow_median(values: torch.Tensor) -> float:
    ordered = sorted(float(value) for value in values.flatten())
    return ordered[(len(ordered) - 1) // 2]
