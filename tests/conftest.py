"""Shared fixtures: tiny config-built models saved to disk (so the real loading path runs) and the real default model."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from critical_neurons.model.folding import BOOKENDS_TEXT

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "smollm2-135m"
SHORT_BOOKENDS_TEXT = BOOKENDS_TEXT[: BOOKENDS_TEXT.index(" of a ")] + "."  # "Later reviews ... stunning in its vision."
CORPUS = [
    SHORT_BOOKENDS_TEXT,
    "The polar bear is a large carnivorous mammal native to the Arctic. It hunts seals on the sea ice.",
    "def add(a, b):\n    return a + b\n\nThe answer is (B). 1,000 apples cost $3.50 each; 1/2 = 0.5.",
    "Question: What is the capital of France?\nAnswer: Paris. Les ours polaires chassent les phoques.",
]


def build_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in milliseconds on a few sentences: real tokenizer code, no download."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    return fast


TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
TINY_CONFIGS = {
    "llama": lambda vocab: LlamaConfig(vocab_size=vocab, **TINY),
    "qwen2": lambda vocab: Qwen2Config(vocab_size=vocab, **TINY),
    "mistral": lambda vocab: MistralConfig(vocab_size=vocab, **TINY),
    "phi3": lambda vocab: Phi3Config(vocab_size=vocab, **TINY),
    "gemma": lambda vocab: GemmaConfig(vocab_size=vocab, head_dim=8, **TINY),
    "gemma2": lambda vocab: Gemma2Config(vocab_size=vocab, head_dim=8, **TINY),
    "gemma3": lambda vocab: Gemma3TextConfig(vocab_size=vocab, head_dim=8, sliding_window=8, **TINY),
    "gpt2": lambda vocab: GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256),
}


def save_tiny_model(family: str, path: Path, seed: int = 0) -> Path:
    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    config = TINY_CONFIGS[family](len(tokenizer))
    config.bos_token_id = config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_config(config)
    # Random init is tiny; scale weights up so activations and losses differ visibly between channels.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, 0.2)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Factory: tiny_model_path("llama") -> folder with a saved random model and tokenizer."""
    cache: dict[str, Path] = {}

    def make(family: str = "llama") -> Path:
        if family not in cache:
            cache[family] = save_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return cache[family]

    return make


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The real SmolLM2-135M folder prepared by models/prepare_default_model.py (CI prepares it first)."""
    if not (DEFAULT_MODEL / "config.json").is_file():
        subprocess.run([sys.executable, str(ROOT / "models" / "prepare_default_model.py")], check=True)
    return DEFAULT_MODEL


def run_script(script: str, *args: str, check: bool = False, in_process: bool = True) -> subprocess.CompletedProcess:
    """Run a project script as a user would, with its flags; returns returncode, stdout and stderr.

    In-process (``runpy`` with ``sys.argv`` set, as ``python script.py`` does) by default, which saves
    the few seconds of importing torch and transformers per call; ``in_process=False`` spawns Python.
    """
    argv = [str(ROOT / script), *map(str, args)]
    if in_process:
        stdout, stderr = io.StringIO(), io.StringIO()
        returncode = 0
        saved_argv, saved_cwd = sys.argv, os.getcwd()
        try:
            sys.argv = argv
            os.chdir(ROOT)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exit_:
            returncode = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            logging.getLogger().handlers.clear()
        result = subprocess.CompletedProcess(argv, returncode, stdout.getvalue(), stderr.getvalue())
    else:
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def neuron_file(folder: Path, layer: str = "model.layers.0.mlp.down_proj", channel: int = 3) -> Path:
    """A ranking file with one record, in the stage-1 format."""
    path = folder / "neurons.json"
    record = {"layer_name": layer, "batch_idx": 0, "seq_idx": 0, "hidden_idx": channel, "activation_diff": 1.0}
    path.write_text(json.dumps({"top_neurons": [record]}))
    return path


def assert_usage_error(result: subprocess.CompletedProcess, flag: str, output: Path | None = None) -> None:
    """SPEC section 14: exit status 2, exactly one error line (the last) naming the flag, no traceback, no output file."""
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and flag in errors[0] and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if output is not None:
        assert not output.exists()
