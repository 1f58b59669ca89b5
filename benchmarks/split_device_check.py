"""Check that Stage 1, Stage 2 and masked generation give the same answers when the model is split over devices.

    python benchmarks/split_device_check.py --model_path models/smollm2-135m

Loads the model once on one GPU and once with a device map that puts the first half of the layers on
``cuda:0`` and the rest on the CPU (what ``--device_map auto`` does across GPUs, with the CPU standing
in for a second GPU), then compares the top records, the Stage-2 result and masked greedy outputs.
"""

from __future__ import annotations

import json

import torch

from critical_neurons import NeuronMasker
from critical_neurons.cli import ArgumentParser, encode_text
from critical_neurons.cli import run as run_cli
from critical_neurons.evaluation.generation import generate
from critical_neurons.method.stage1 import perturbation_importance
from critical_neurons.method.stage2 import critical_prefix
from critical_neurons.model.folding import BOOKENDS_TEXT
from critical_neurons.model.loading import device_summary, load_model


def split_map(model_path: str) -> dict[str, str]:
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(model_path).num_hidden_layers
    device_map = {"model.embed_tokens": "cuda:0", "model.rotary_emb": "cuda:0", "model.norm": "cpu", "lm_head": "cpu"}
    device_map.update({f"model.layers.{i}": "cuda:0" if i < layers // 2 else "cpu" for i in range(layers)})
    return device_map


def run(model_path: str, device_map) -> dict:
    model, tokenizer = load_model(model_path, "float32", device_map)
    input_ids = encode_text(tokenizer, BOOKENDS_TEXT, "--input_text")
    ranking = perturbation_importance(model, input_ids, num_samples=20, progress=False)
    found = critical_prefix(model, input_ids, ranking.records, max_magnitude=3.0, by_channel=True, progress=False)
    with NeuronMasker(model, found.channels):
        masked = generate(model, tokenizer, ["The capital of France is"], max_new_tokens=8, progress=False)
    return {
        "device_map": device_summary(model),
        "top10": [(r.layer_name, r.seq_idx, r.hidden_idx) for r in ranking.records[:10]],
        "top_scores": [round(r.score, 3) for r in ranking.records[:10]],
        "critical_channels": [tuple(c) for c in found.channels],
        "steps": len(found.steps),
        "final_log10_ppl": round(found.steps[-1].log10_perplexity, 4),
        "masked_generation": masked,
        "unmasked_generation": generate(model, tokenizer, ["The capital of France is"], max_new_tokens=8, progress=False),
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    single = run(args.model_path, None)
    split = run(args.model_path, split_map(args.model_path))
    report = {"single": single, "split": split, "same_top10": single["top10"] == split["top10"],
              "same_critical_channels": single["critical_channels"] == split["critical_channels"],
              "same_generations": single["masked_generation"] == split["masked_generation"]}
    print(json.dumps(report, indent=1))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    torch.manual_seed(0)
    run_cli(main)
