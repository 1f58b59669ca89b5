"""Write a model folder with a real model's shapes and random weights, for timings at scale offline.

    python benchmarks/random_model.py --config benchmarks/configs/llama3_8b.json \
        --tokenizer models/smollm2-135m --output_dir /tmp/llama3-8b-random --dtype bfloat16

Speed and memory depend on the shapes, not on the weights, so a machine that cannot download a
model still gives real-scale figures. The weights are initialised on the GPU when there is one.
The tokenizer is copied from ``--tokenizer``; its ids must fit the config's vocabulary. Rankings
and perplexities from such a model mean nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from critical_neurons.cli import SEED_MAX, ArgumentParser, integer, run
from critical_neurons.errors import UsageError
from critical_neurons.model.export import check_output_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "tokenizer.model")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="a config.json of the model whose shapes to copy")
    parser.add_argument("--tokenizer", required=True, help="a folder holding a tokenizer")
    parser.add_argument("--output_dir", required=True, help="a new folder")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=0)
    args = parser.parse_args()
    if not Path(args.config).is_file():
        raise UsageError("--config", f"{args.config} is not a file", "pass a model's config.json, e.g. benchmarks/configs/llama3_8b.json")
    if not (Path(args.tokenizer) / "tokenizer_config.json").is_file():
        raise UsageError("--tokenizer", f"{args.tokenizer} is not a tokenizer folder", "pass a model folder, e.g. models/smollm2-135m")
    output = check_output_dir(args.output_dir, args.tokenizer, link=False)
    try:
        config = AutoConfig.from_pretrained(args.config)
    except (OSError, ValueError) as error:
        raise UsageError("--config", f"{args.config} is not a model config ({error})", "pass a model's config.json") from None
    if len(AutoTokenizer.from_pretrained(args.tokenizer)) > config.vocab_size:
        raise UsageError("--tokenizer", f"its vocabulary is larger than the config's {config.vocab_size}", "use a smaller tokenizer")
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    model.save_pretrained(output)
    for name in TOKENIZER_FILES:
        if (Path(args.tokenizer) / name).is_file():
            shutil.copy(Path(args.tokenizer) / name, output / name)
    print(f"wrote {output}: {model.num_parameters() / 1e9:.2f}B parameters, {args.dtype}, random weights")


if __name__ == "__main__":
    run(main)
