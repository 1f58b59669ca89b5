"""benchmarks/random_model.py: a model folder with a config's shapes and random weights, and its bad input."""

from __future__ import annotations

import json

import pytest
from conftest import assert_usage_error, run_script

from critical_neurons.model.loading import load_model

SCRIPT = "benchmarks/random_model.py"


@pytest.fixture()
def small_config(tiny_model_path, tmp_path):
    config = json.loads((tiny_model_path("llama") / "config.json").read_text())
    config["num_hidden_layers"] = 3  # other shapes than the tiny model's: the config is what counts
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_writes_a_loadable_model_with_the_configs_shapes(tiny_model_path, small_config, tmp_path):
    output = tmp_path / "random"
    run_script(SCRIPT, "--config", small_config, "--tokenizer", tiny_model_path("llama"), "--output_dir", output, "--dtype", "float32", check=True)
    model, tokenizer = load_model(str(output))
    assert model.config.num_hidden_layers == 3 and len(model.model.layers) == 3
    assert tokenizer("Hello world").input_ids


@pytest.mark.parametrize("case, flag", [("config", "--config"), ("tokenizer", "--tokenizer"), ("output", "--output_dir"), ("seed", "--seed")])
def test_bad_input_is_one_line(tiny_model_path, small_config, tmp_path, case, flag):
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "file").write_text("x")
    arguments = {"--config": small_config, "--tokenizer": tiny_model_path("llama"), "--output_dir": tmp_path / "new", "--seed": "0"}
    arguments.update({"config": {"--config": tmp_path / "missing.json"}, "tokenizer": {"--tokenizer": tmp_path}, "output": {"--output_dir": existing}, "seed": {"--seed": "-1"}}[case])
    result = run_script(SCRIPT, *[item for pair in arguments.items() for item in pair])
    assert_usage_error(result, flag, tmp_path / "new")
