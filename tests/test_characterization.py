"""Characterisation: a planted massive activation and super weight are found exactly; no-op masks give KL 0; controls; bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import ROOT, assert_usage_error, run_script

from critical_neurons.errors import UsageError
from critical_neurons.method.baselines import Population
from critical_neurons.method.characterization import characterize, control_population, draw_control_sets
from critical_neurons.model.folding import BOOKENDS_TEXT
from critical_neurons.model.loading import load_model
from critical_neurons.outputs.records import Channel
from critical_neurons.outputs.run_identity import model_identity
from critical_neurons.reporting.characterization_tables import markdown_tables

SCRIPT = "method/3_characterize_critical_neurons.py"
TEXT = "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice."
# The plant, in layer 0 of the tiny Llama: the first token alone has residual dimension J (embedding E),
# so MLP inputs K and K2 (gate and up rows reading only J) are non-zero at position 0 only, and
# down_proj row D reads them with weights W and W2 (column K and K2 are zero in every other row).
J, D, K, K2, ZEROED = 9, 5, 7, 40, 20
E, G, U, U2, W, W2 = 20.0, 3.0, 3.0, 1.5, 4.0, 2.0


def slow_median(values: torch.Tensor) -> float:
    """The lower median, element by element."""
    ordered = sorted(float(value) for value in values.flatten())
    return ordered[(len(ordered) - 1) // 2]


@pytest.fixture(scope="module")
def planted(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("llama")))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    first = int(ids[0, 0])
    assert first not in ids[0, 1:].tolist()
    layer = model.model.layers[0]
    with torch.no_grad():
        embeddings = model.model.embed_tokens.weight
        embeddings[:, J] = 0.0
        embeddings[first] = 0.0
        embeddings[first, J] = E
        layer.self_attn.o_proj.weight[J] = 0.0  # attention never writes dimension J
        for row, up in ((K, U), (K2, U2)):
            layer.mlp.gate_proj.weight[row] = 0.0
            layer.mlp.gate_proj.weight[row, J] = G
            layer.mlp.up_proj.weight[row] = 0.0
            layer.mlp.up_proj.weight[row, J] = up
        layer.mlp.down_proj.weight[:, [K, K2]] = 0.0
        layer.mlp.down_proj.weight[D, K] = W
        layer.mlp.down_proj.weight[D, K2] = W2
        model.model.layers[1].mlp.down_proj.weight[ZEROED] = 0.0  # an output channel that is always exactly 0
    return model, tokenizer, ids


def captured_pass(model, ids, name):
    """The module's input and output and the hidden states, from hooks and output_hidden_states of its own."""
    store = {}
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda mod, inputs, output: store.update(x=inputs[0][0].detach(), y=output[0].detach()))
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
    handle.remove()
    return store["x"], store["y"], [state[0] for state in hidden]


@pytest.fixture(scope="module")
def planted_result(planted):
    model, tokenizer, ids = planted
    return characterize(model, tokenizer, ids, [Channel("model.layers.0.mlp.down_proj", D)], num_random_sets=4, progress=False)


def test_planted_massive_activation_is_found(planted, planted_result):
    model, tokenizer, ids = planted
    _, y, _ = captured_pass(model, ids, "model.layers.0.mlp.down_proj")
    activation = planted_result["channels"][0]["activation"]
    assert activation["peak_position"] == 0
    assert activation["peak_token"] == tokenizer.convert_ids_to_tokens(int(ids[0, 0]))
    assert activation["rank_in_module_at_peak"] == 1
    assert activation["values"] == pytest.approx(y[:, D].tolist(), rel=1e-6, abs=1e-6)
    assert activation["module_median_abs"] == pytest.approx(slow_median(y.abs()), rel=1e-6)
    assert activation["ratio_to_median"] == pytest.approx(abs(float(y[0, D])) / slow_median(y.abs()), rel=1e-5)
    assert activation["massive"] and activation["ratio_to_median"] > 100


def test_planted_super_weight_inputs_and_shares(planted, planted_result):
    model, _, ids = planted
    x, y, _ = captured_pass(model, ids, "model.layers.0.mlp.down_proj")
    weights = planted_result["channels"][0]["weights"]
    row = model.model.layers[0].mlp.down_proj.weight[D].detach()
    # Slow reference: every product w_Dk * x_k at position 0, one by one, sorted by magnitude.
    products = [(k, float(row[k]) * float(x[0, k])) for k in range(len(row))]
    products.sort(key=lambda item: -abs(item[1]))
    output = float(y[0, D])
    assert [entry["input"] for entry in weights["top_inputs"][:2]] == [K, K2]
    for entry, (k, product) in zip(weights["top_inputs"], products):
        assert entry["input"] == k
        assert entry["product"] == pytest.approx(product, rel=1e-5, abs=1e-6)
        assert entry["share"] == pytest.approx(product / output, rel=1e-5, abs=1e-7)
        assert entry["weight"] == float(row[k]) and entry["input_activation"] == pytest.approx(float(x[0, k]), rel=1e-6)
    # Closed form: inputs K and K2 share the gate factor, so their products are in the ratio W*U : W2*U2.
    first, second = weights["top_inputs"][:2]
    assert second["product"] / first["product"] == pytest.approx((W2 * U2) / (W * U), rel=1e-5)
    assert first["weight"] == W and second["weight"] == W2
    assert weights["row_max_input"] == K and weights["row_max_abs_weight"] == W
    assert weights["row_median_abs_weight"] == pytest.approx(slow_median(row.abs()))
    assert weights["sum_of_products"] == pytest.approx(output, rel=1e-4)


def test_planted_dimension_through_the_residual_stream(planted, planted_result):
    model, _, ids = planted
    _, _, hidden = captured_pass(model, ids, "model.layers.0.mlp.down_proj")
    residual = planted_result["channels"][0]["residual_stream"]
    assert residual["dimension"] == D and residual["position"] == 0 and residual["written_into_hidden_state"] == 1
    assert residual["values"] == pytest.approx([float(state[0, D]) for state in hidden], rel=1e-6)
    ratios = [abs(float(state[0, D])) / slow_median(state.abs()) for state in hidden]
    assert residual["ratio_to_layer_median"] == pytest.approx(ratios, rel=1e-5)
    assert residual["massive_hidden_states"] == [index for index, ratio in enumerate(ratios) if ratio >= 100]
    assert 1 in residual["massive_hidden_states"] and residual["persists_until_hidden_state"] == max(i for i in range(1, len(ratios)) if all(r >= 100 for r in ratios[1 : i + 1]))
    assert abs(residual["masked_values"][1]) < abs(residual["values"][1]) / 100


def test_masking_the_planted_channel_moves_distributions(planted_result):
    effect = planted_result["channels"][0]["effect"]
    assert effect["kl_mean"] > 0 and effect["kl_per_position"][0] > 0
    assert len(effect["kl_per_position"]) == planted_result["num_tokens"]
    assert len(effect["first_token_attention"]) == len(planted_result["baseline"]["first_token_attention"]) == 2
    assert planted_result["attention_implementation"] == "eager"


def test_a_channel_with_no_effect_gives_kl_zero_and_full_agreement(planted):
    model, tokenizer, ids = planted
    before = model.config._attn_implementation
    planted_channel, zeroed = Channel("model.layers.0.mlp.down_proj", D), Channel("model.layers.1.mlp.down_proj", ZEROED)
    result = characterize(model, tokenizer, ids, [planted_channel, zeroed], num_random_sets=0, progress=False)
    assert model.config._attn_implementation == before  # restored after the eager passes
    alone_planted, alone_zeroed = (block["effect"] for block in result["channels"])
    assert alone_zeroed["kl_per_position"] == [0.0] * result["num_tokens"]
    assert alone_zeroed["kl_mean"] == 0.0 and alone_zeroed["top1_agreement"] == 1.0 and alone_zeroed["log10_perplexity_change"] == 0.0
    assert alone_zeroed["first_token_attention"] == result["baseline"]["first_token_attention"]
    assert result["channels"][1]["activation"]["values"] == [0.0] * result["num_tokens"]
    # Leave-one-out: the set without the zeroed channel is the planted channel alone, and the other way round.
    without_planted, without_zeroed = result["controls"]["leave_one_out"]
    assert without_zeroed["without"] == zeroed._asdict() and without_zeroed["kl_per_position"] == alone_planted["kl_per_position"]
    assert without_planted["kl_mean"] == 0.0 and without_planted["top1_agreement"] == 1.0
    assert result["set_effect"]["kl_per_position"] == alone_planted["kl_per_position"]
    tables = markdown_tables(result)
    assert "the critical set" in tables and f"set without model.layers.1.mlp.down_proj[{ZEROED}]" in tables


def test_gpt2_conv1d_weight_profile_with_bias(tiny_model_path):
    model, tokenizer = load_model(str(tiny_model_path("gpt2")))
    name, channel = "transformer.h.0.mlp.c_proj", 6
    module = dict(model.named_modules())[name]
    with torch.no_grad():
        module.bias[channel] = 0.5
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    result = characterize(model, tokenizer, ids, [Channel(name, channel)], num_random_sets=0, top_inputs=4, progress=False)
    block = result["channels"][0]
    x, y, _ = captured_pass(model, ids, name)
    position = block["activation"]["peak_position"]
    assert position == int(y[:, channel].abs().argmax())
    column = module.weight[:, channel].detach()  # Conv1D stores (in, out)
    products = sorted(((k, float(column[k]) * float(x[position, k])) for k in range(len(column))), key=lambda item: -abs(item[1]))[:4]
    weights = block["weights"]
    assert weights["bias"] == 0.5
    assert weights["output_without_bias"] == pytest.approx(float(y[position, channel]) - 0.5, rel=1e-6)
    assert [entry["input"] for entry in weights["top_inputs"]] == [k for k, _ in products]
    assert [entry["share"] for entry in weights["top_inputs"]] == pytest.approx([p / (float(y[position, channel]) - 0.5) for _, p in products], rel=1e-4)
    assert block["residual_stream"]["written_into_hidden_state"] == 1  # mlp.c_proj writes the residual stream


def test_random_controls_come_from_the_same_module_type_and_layers(planted, planted_result):
    model, _, _ = planted
    critical = [Channel("model.layers.0.mlp.down_proj", D), Channel("model.layers.0.self_attn.o_proj", 3)]
    names = control_population(model, critical)
    assert names == ["model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj"]
    population = Population("test", tuple(names), (32, 32))
    sets = draw_control_sets(population, critical, 2, 50, seed=7)
    assert len(sets) == 50 and all(len(set(drawn)) == 2 for drawn in sets)
    assert {channel.layer_name for drawn in sets for channel in drawn} == set(names)
    assert not {channel for drawn in sets for channel in drawn} & set(critical)
    assert sets == draw_control_sets(population, critical, 2, 50, seed=7) and sets != draw_control_sets(population, critical, 2, 50, seed=8)
    mixed = control_population(model, [Channel("model.layers.0.mlp.down_proj", D), Channel("model.layers.1.self_attn.o_proj", 3)])
    assert sorted(mixed) == sorted(f"model.layers.{layer}.{kind}" for layer in (0, 1) for kind in ("mlp.down_proj", "self_attn.o_proj"))
    random = planted_result["controls"]["random_sets"]
    assert random["num_sets"] == 4 and random["population"]["modules"] == ["model.layers.0.mlp.down_proj"]
    drawn = [Channel(**effect["channels"][0]) for effect in random["sets"]]
    assert all(channel.layer_name == "model.layers.0.mlp.down_proj" and channel.hidden_idx != D for channel in drawn)
    changes = [effect["log10_perplexity_change"] for effect in random["sets"]]
    assert random["log10_perplexity_change"]["min"] == min(changes) and random["log10_perplexity_change"]["max"] == max(changes)
    with pytest.raises(UsageError, match="--num_random_sets"):
        draw_control_sets(Population("test", ("model.layers.0.self_attn.o_proj",), (32,)), [Channel("model.layers.0.self_attn.o_proj", c) for c in range(32)], 32, 1, seed=0)


@pytest.fixture
def stage2_file(tmp_path):
    def make(layer="model.layers.0.mlp.down_proj", channel=3, text=TEXT, key="final_masked_neurons"):
        payload = {key: [{"layer_name": layer, "batch_idx": 0, "seq_idx": 0, "hidden_idx": channel, "activation_diff": 1.0}]}
        if text is not None:
            payload["test_text"] = text
        path = tmp_path / f"{key}-{layer}-{channel}-{text is None}.json"
        path.write_text(json.dumps(payload))
        return path

    return make


def test_script_writes_result_figures_and_table(tiny_model_path, stage2_file, tmp_path):
    model_path = tiny_model_path("llama")
    output, assets = tmp_path / "out" / "characterization.json", tmp_path / "assets"
    result = run_script(SCRIPT, "--model_path", model_path, "--neuron_file", stage2_file(layer="model.layers.1.mlp.down_proj"), "--num_random_sets", "3",
                        "--output_file", output, "--assets_dir", assets, check=True)
    payload = json.loads(output.read_text())
    assert payload["kind"] == "characterization" and payload["test_text"] == TEXT
    model, _ = load_model(str(model_path))
    assert payload["model"] == model_identity(model, str(model_path))
    assert payload["settings"]["channels"] == [{"layer_name": "model.layers.1.mlp.down_proj", "hidden_idx": 3}]
    assert payload["controls"]["random_sets"]["num_sets"] == 3 and "metadata" in payload
    assert sorted(path.name for path in assets.iterdir()) == ["characterization_activation_profile.png", "characterization_residual_stream.png"]
    assert "| model.layers.1.mlp.down_proj[3] alone |" in result.stdout and "3 random sets" in result.stdout
    # The report puts the same tables in its own section.
    report = run_script("ablation/report.py", "--results_dir", output.parent, "--neurons_dir", tmp_path / "none", "--ablation_dir", tmp_path / "none",
                        "--output_dir", tmp_path / "report", "--assets_dir", tmp_path / "report_assets", check=True)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "What the critical neurons are" in text and "| model.layers.1.mlp.down_proj[3] alone |" in text and "Skipping" not in report.stderr


def test_script_ranking_file_with_num_neurons_and_dataset_text(tiny_model_path, stage2_file, tmp_path):
    output = tmp_path / "ranking.json"
    ranking = stage2_file(key="top_neurons", text=None)
    run_script(SCRIPT, "--model_path", tiny_model_path("llama"), "--neuron_file", ranking, "--num_neurons", "5", "--dataset_path", ROOT / "tests/fixtures/wikitext_test.jsonl",
               "--num_random_sets", "0", "--output_file", output, "--assets_dir", tmp_path / "assets", check=True)
    payload = json.loads(output.read_text())
    assert payload["settings"]["records_used"] == 1 and payload["settings"]["text_source"].endswith("text 0")
    assert payload["controls"]["random_sets"]["sets"] == [] and all(math.isfinite(value) for value in payload["set_effect"]["kl_per_position"])


@pytest.mark.parametrize(
    ("case", "flag"),
    [
        ("ranking without --num_neurons", "--num_neurons"),
        ("absent module", "--neuron_file"),
        ("channel out of range", "--neuron_file"),
        ("missing neuron file", "--neuron_file"),
        ("no text anywhere", "--text"),
        ("empty text", "--text"),
        ("negative random sets", "--num_random_sets"),
        ("zero neurons", "--num_neurons"),
        ("file for another model", "--neuron_file"),
        ("output is a folder", "--output_file"),
        ("text index past the dataset", "--text_index"),
    ],
)
def test_bad_input(case, flag, tiny_model_path, stage2_file, tmp_path):
    output = tmp_path / "result.json"
    neuron_file, extra = stage2_file(), []
    if case == "ranking without --num_neurons":
        neuron_file = stage2_file(key="top_neurons")
    elif case == "absent module":
        neuron_file = stage2_file(layer="model.layers.9.mlp.down_proj")
    elif case == "channel out of range":
        neuron_file = stage2_file(channel=32)
    elif case == "missing neuron file":
        neuron_file = tmp_path / "missing.json"
    elif case == "no text anywhere":
        neuron_file = stage2_file(text=None)
    elif case == "empty text":
        extra = ["--text", ""]
    elif case == "negative random sets":
        extra = ["--num_random_sets", "-1"]
    elif case == "zero neurons":
        extra = ["--num_neurons", "0"]
    elif case == "file for another model":
        payload = json.loads(neuron_file.read_text())
        payload["model"] = {"path": "/elsewhere", "model_type": "gpt2", "fingerprint": "0" * 16}
        neuron_file.write_text(json.dumps(payload))
    elif case == "output is a folder":
        output = tmp_path
    elif case == "text index past the dataset":
        extra = ["--dataset_path", ROOT / "tests/fixtures/wikitext_test.jsonl", "--text_index", "99"]
    result = run_script(SCRIPT, "--model_path", tiny_model_path("llama"), "--neuron_file", neuron_file, "--output_file", output, "--assets_dir", tmp_path / "assets", *extra)
    assert_usage_error(result, flag, None if output == tmp_path else output)
    assert not (tmp_path / "assets").exists()


@pytest.mark.parametrize("existing", [{"kind": "evaluation", "results": []}, {"top_neurons": []}, [1, 2]])
def test_an_output_of_another_kind_is_not_overwritten(existing, tiny_model_path, stage2_file, tmp_path):
    """As the evaluators: a file that is not a characterisation is refused, before the model loads, and kept."""
    output = tmp_path / "result.json"
    output.write_text(json.dumps(existing))
    result = run_script(SCRIPT, "--model_path", tiny_model_path("llama"), "--neuron_file", stage2_file(), "--output_file", output, "--assets_dir", tmp_path / "assets")
    assert_usage_error(result, "--output_file")
    assert "not a characterization result" in result.stderr and json.loads(output.read_text()) == existing and not (tmp_path / "assets").exists()


@pytest.mark.real_model
def test_smollm2_critical_channel_is_a_massive_activation(default_model_path):
    """SmolLM2-135M's layer 11 down_proj channel 507: a massive activation on the first token, made by two inputs."""
    model, tokenizer = load_model(str(default_model_path), dtype="float32")
    ids = tokenizer(BOOKENDS_TEXT, return_tensors="pt").input_ids
    result = characterize(model, tokenizer, ids, [Channel("model.layers.11.mlp.down_proj", 507)], num_random_sets=2, progress=False)
    block = result["channels"][0]
    assert block["activation"]["peak_position"] == 0 and block["activation"]["ratio_to_median"] > 1e4
    assert [entry["input"] for entry in block["weights"]["top_inputs"][:2]] == [1229, 1487]
    assert block["weights"]["top_inputs"][0]["share"] + block["weights"]["top_inputs"][1]["share"] > 0.99
    assert block["residual_stream"]["persists_until_hidden_state"] >= 28
    assert block["effect"]["log10_perplexity_change"] > 4 and block["effect"]["top1_agreement"] < 0.05
    assert result["controls"]["random_sets"]["log10_perplexity_change"]["max"] < 0.05
