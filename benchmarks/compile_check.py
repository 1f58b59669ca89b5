"""Compiled generation on a GPU, checked with logits: does one compiled model follow folded weights?

    python benchmarks/compile_check.py --model_path MODEL --dtype bfloat16 --output OUT.json

Three figures, in one run:
- levels: one compiled model (static KV cache, --compile's decode step) through the levels unmasked,
  folded (a few hundred MLP channels), folded (another set), restored. At each level the decode logits
  of the compiled model are compared with the eager model with the same weights, step by step while
  both have produced the same tokens; the folded levels must move the logits far beyond that
  difference, the restored level must give the unmasked logits again, and nothing may recompile.
- tokens: the share of prompts whose greedy output is identical between the eager path and the
  compiled one (the planned batch size), and, as a control, between the eager path at two batch
  sizes: greedy tokens flip on rounding differences, which differently shaped kernels make too.
Greedy tokens of a random-weight model flip on any rounding difference; run this on real weights for
the token share (the default model) and on a large random model for the levels at scale.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
from benchmark import throughput_prompts as prompts

from critical_neurons.cli import ArgumentParser, add_model_arguments, integer, parse_arguments, run
from critical_neurons.evaluation.generation import generate, plan_generation, static_cache_options
from critical_neurons.model.folding import FOLD_TOLERANCE, folded
from critical_neurons.model.loading import load_model
from critical_neurons.model.perplexity import pad_batch
from critical_neurons.outputs.records import Channel


def greedy_logits(model, tokenizer, texts: list[str], new_tokens: int, options: dict) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids, attention_mask = pad_batch(tokenizer(texts)["input_ids"], tokenizer.pad_token_id, left=True)
    device = model.get_input_embeddings().weight.device
    out = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
        do_sample=False, pad_token_id=tokenizer.pad_token_id, output_logits=True, return_dict_in_generate=True, **options,
    )
    return out.sequences[:, input_ids.shape[1] :].cpu(), torch.stack(out.logits, 1).float().cpu()


def compare(tokens: torch.Tensor, logits: torch.Tensor, other_tokens: torch.Tensor, other_logits: torch.Tensor) -> dict:
    """Largest logit difference over the steps where both runs had produced the same tokens so far."""
    same_so_far = torch.cat([torch.ones(tokens.shape[0], 1, dtype=torch.bool), (tokens == other_tokens).cumprod(1).bool()[:, :-1]], 1)
    difference = (logits - other_logits).abs().amax(-1)[same_so_far]
    return {"steps_compared": int(same_so_far.sum()), "max_abs_logit_difference": float(difference.max()), "logit_scale": float(other_logits.abs().max())}


def mlp_channels(model, count: int, seed: int) -> list[Channel]:
    names = [name for name, _ in model.named_modules() if name.endswith("mlp.down_proj")]
    width = model.get_submodule(names[0]).out_features
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(names) * width, (count,), generator=generator).tolist()
    return sorted({Channel(names[pick // width], pick % width) for pick in picks})


def levels_check(model, tokenizer, batch: int, new_tokens: int) -> dict:
    texts = prompts(batch)
    cache_length = max(len(ids) for ids in tokenizer(texts)["input_ids"]) + new_tokens
    eager = {"disable_compile": True}
    levels = [("unmasked", []), ("folded_a", mlp_channels(model, 300, 0)), ("folded_b", mlp_channels(model, 300, 1)), ("restored", [])]
    graphs = None
    results, unmasked = [], None
    for name, channels in levels:
        with folded(model, channels):
            eager_tokens, eager_logits = greedy_logits(model, tokenizer, texts, new_tokens, eager)
            start = time.perf_counter()
            tokens, logits = greedy_logits(model, tokenizer, texts, new_tokens, static_cache_options(model, batch, cache_length))
            seconds = time.perf_counter() - start
        if graphs is None:
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            unmasked = (tokens, logits)
        entry = {"level": name, "channels": len(channels), "compiled_call_s": round(seconds, 2), "compiled_vs_eager": compare(tokens, logits, eager_tokens, eager_logits)}
        entry["compiled_vs_unmasked_compiled"] = compare(tokens, logits, *unmasked)
        results.append(entry)
    tolerance = FOLD_TOLERANCE.get(model.dtype, 1e-2)
    scale = max(1.0, results[0]["compiled_vs_eager"]["logit_scale"])
    follows = all(entry["compiled_vs_eager"]["max_abs_logit_difference"] <= tolerance * scale for entry in results)
    moved = all(entry["compiled_vs_unmasked_compiled"]["max_abs_logit_difference"] > tolerance * scale for entry in results[1:3])
    restored = results[3]["compiled_vs_unmasked_compiled"]["max_abs_logit_difference"]
    return {
        "batch": batch,
        "new_tokens": new_tokens,
        "tolerance": tolerance * scale,
        "levels": results,
        "compiled_follows_each_level": follows,
        "folded_levels_move_the_logits_beyond_tolerance": moved,
        "restored_max_abs_logit_difference": restored,
        "recompiled_after_the_first_level": torch._dynamo.utils.counters["stats"]["unique_graphs"] != graphs,
    }


def token_share(model, tokenizer, count: int, new_tokens: int) -> dict:
    texts = prompts(count)
    model.generation_config.eos_token_id = None
    planned = plan_generation(model, tokenizer, texts, max_new_tokens=new_tokens, batch_size=None, compile="on")
    outputs = {
        "eager_batch_8": generate(model, tokenizer, texts, max_new_tokens=new_tokens, batch_size=8, progress=False),
        "eager_planned_batch": generate(model, tokenizer, texts, max_new_tokens=new_tokens, batch_size=planned.batch_size, progress=False),
        "compiled_planned_batch": generate(model, tokenizer, texts, max_new_tokens=new_tokens, batch_size=planned.batch_size, compile=True, progress=False),
    }

    def share(first: str, second: str) -> float:
        return sum(a == b for a, b in zip(outputs[first], outputs[second])) / count

    return {
        "prompts": count,
        "new_tokens": new_tokens,
        "planned_batch_size": planned.batch_size,
        "identical_compiled_vs_eager_same_batch": share("compiled_planned_batch", "eager_planned_batch"),
        "identical_compiled_vs_eager_batch_8": share("compiled_planned_batch", "eager_batch_8"),
        "control_identical_eager_batch_8_vs_eager_planned_batch": share("eager_batch_8", "eager_planned_batch"),
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--levels_batch", type=integer(1), default=8, help="prompts in the levels check")
    parser.add_argument("--new_tokens", type=integer(2), default=32)
    parser.add_argument("--token_prompts", type=integer(0), default=64, help="prompts in the token-share check (0: skip it)")
    parser.add_argument("--output", required=True)
    args = parse_arguments(parser)
    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map)
    report = {
        "model_path": args.model_path,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "levels": levels_check(model, tokenizer, args.levels_batch, args.new_tokens),
    }
    if args.token_prompts:
        report["tokens"] = token_share(model, tokenizer, args.token_prompts, args.new_tokens)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
