"""Speed and memory figures of SPEC section 15, measured in one run on one machine (not a test).

    python benchmarks/benchmark.py                                   # CPU, default model, float32
    python benchmarks/benchmark.py --dtype bfloat16 --device_map auto --output benchmarks/gpu.json

Each part runs in a fresh process so its peak memory is its own:
- stage1: Stage 1 wall time (model load + the whole Stage-1 call) against the batched compute floor
  (model load + the K+1 texts through the base model, no LM head, no hooks, --batch_size rows a pass),
  where the time beyond the floor goes, the ratio to K+1 serial full forward passes, and peak memory
  above the loaded model (CPU RSS, or CUDA allocator peak on GPU);
- stage2: forward passes used against prefixes evaluated, for a long search (6 orders of magnitude,
  channel scan), with 1 and --batch_size prefixes per pass;
- masking: forward-pass time with the channels of 10,000 records masked against unmasked;
- generation: greedy tokens per second, masked (10,000 records) against unmasked; and the evaluators'
  generation path before this plan (eager, dynamic KV cache) against the planned one (--compile, auto
  batch size on CUDA) at batch 8, 64 and auto, each as a share of the memory-bandwidth bound: a
  decode step reads every weight once, so at most (copy bandwidth / weight bytes) steps per second,
  with the device-to-device copy bandwidth measured in the same run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import time
from pathlib import Path
from queue import Empty

import torch

from critical_neurons.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, repeats: int = 1) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def load(args):
    from critical_neurons.cli import encode_text
    from critical_neurons.model.folding import BOOKENDS_TEXT
    from critical_neurons.model.loading import input_device, load_model

    model, tokenizer = load_model(args["model_path"], args["dtype"], args["device_map"])
    input_ids = encode_text(tokenizer, BOOKENDS_TEXT, "--input_text").to(input_device(model))
    return model, tokenizer, input_ids


def part_stage1(args) -> dict:
    """Stage 1 against the batched compute floor, both including the model load, plus its peak memory.

    The floor is what Stage 1 cannot avoid: loading the model and running the K+1 texts (the clean one
    and K noisy copies) through the base model (no LM head, no hooks) in passes of --batch_size rows.
    Stage 1 and the floor alternate --stage1_repeats times and the fastest of each counts (the first
    Stage-1 call also compiles the CPU kernel, or loads it from numba's cache). The ranking is timed
    alone too, to show where the time beyond the floor goes.
    """
    import critical_neurons.cli  # noqa: F401  (imported before the clock starts: not part of the load)
    from critical_neurons.method.ranking import rank_site_scores
    from critical_neurons.method.stage1 import SCORE_THRESHOLD, perturbation_importance
    from critical_neurons.model.sites import SiteRecorder, base_forward

    synchronize()
    start = time.perf_counter()
    model, _, input_ids = load(args)
    synchronize()
    load_s = time.perf_counter() - start
    forward = base_forward(model)
    with torch.no_grad():
        model(input_ids=input_ids)  # warm-up
        texts = model.get_input_embeddings()(input_ids).repeat(args["batch_size"], 1, 1)
    model_rss = peak_rss_mb()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        model_cuda = torch.cuda.max_memory_allocated() / 2**20
    samples, batch = args["num_samples"], args["batch_size"]
    ranking = None

    def stage1() -> None:
        nonlocal ranking
        ranking = perturbation_importance(model, input_ids, num_samples=samples, batch_size=batch, progress=False)

    def floor_passes() -> None:
        with torch.no_grad():
            for first in range(0, samples + 1, batch):
                forward(inputs_embeds=texts[: min(batch, samples + 1 - first)], use_cache=False)

    stage1_runs = [timed(stage1)]
    stage1_peak_rss = peak_rss_mb()
    stage1_cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    floor_runs = [timed(floor_passes)]
    for _ in range(args["stage1_repeats"] - 1):
        stage1_runs.append(timed(stage1))
        floor_runs.append(timed(floor_passes))
    stage1_call, floor = min(stage1_runs), min(floor_runs)

    maps: dict[str, torch.Tensor] = {}

    def keep_map(name: str, output: torch.Tensor) -> None:  # score-shaped maps to time the ranking on
        maps[name] = output[0].float().abs()

    with torch.no_grad(), SiteRecorder(model, ranking.sites, keep_map):
        forward(input_ids=input_ids, use_cache=False)
    ranking_s = timed(lambda: rank_site_scores(maps, 10_000, SCORE_THRESHOLD), repeats=3)
    maps.clear()

    def serial_forwards() -> None:
        with torch.no_grad():
            for _ in range(samples + 1):
                model(input_ids=input_ids)

    serial = timed(serial_forwards)
    result = {
        "num_samples": samples,
        "batch_size": batch,
        "num_tokens": int(input_ids.shape[1]),
        "load_s": round(load_s, 3),
        "stage1_call_s": round(stage1_call, 3),
        "stage1_call_runs_s": [round(value, 3) for value in stage1_runs],
        "floor_passes_s": round(floor, 3),
        "floor_passes_runs_s": [round(value, 3) for value in floor_runs],
        "stage1_with_load_s": round(load_s + stage1_call, 3),
        "floor_with_load_s": round(load_s + floor, 3),
        "stage1_over_floor": round((load_s + stage1_call) / (load_s + floor), 3),
        "stage1_over_floor_per_alternation": [round((load_s + one) / (load_s + other), 3) for one, other in zip(stage1_runs, floor_runs)],
        "stage1_call_over_floor_passes": round(stage1_call / floor, 3),
        "beyond_floor": {
            "total_s": round(stage1_call - floor, 3),
            "ranking_s": round(ranking_s, 3),
            "site_work_and_rest_s": round(stage1_call - floor - ranking_s, 3),
        },
        "serial_full_forwards_s": round(serial, 3),
        "stage1_call_over_serial": round(stage1_call / serial, 3),
        "rss_after_model_load_mb": round(model_rss, 1),
        "stage1_peak_rss_mb": round(stage1_peak_rss, 1),
        "stage1_peak_rss_above_model_mb": round(stage1_peak_rss - model_rss, 1),
    }
    if torch.cuda.is_available():
        result["stage1_cuda_peak_above_model_mb"] = round(stage1_cuda_peak - model_cuda, 1)
    return result


def part_stage2(args) -> dict:
    from critical_neurons.method.stage1 import perturbation_importance
    from critical_neurons.method.stage2 import critical_prefix

    model, _, input_ids = load(args)
    records = perturbation_importance(model, input_ids, num_samples=args["num_samples"], batch_size=args["batch_size"], progress=False).records
    result = {}
    for batch_size in (1, args["batch_size"]):
        start = time.perf_counter()
        found = critical_prefix(model, input_ids, records, max_magnitude=6.0, batch_size=batch_size, by_channel=True, progress=False)
        result[f"batch_{batch_size}"] = {
            "prefixes_evaluated": found.prefixes_evaluated,
            "forward_passes": found.forward_passes,
            "wall_s": round(time.perf_counter() - start, 3),
            "stopping_reason": found.stopping_reason,
            "critical_records": len(found.records),
        }
    return result


def masked_channels(model, input_ids, args):
    from critical_neurons.method.stage1 import perturbation_importance
    from critical_neurons.outputs.records import distinct_channels

    records = perturbation_importance(model, input_ids, num_samples=4, top_n=10_000, progress=False).records
    return distinct_channels(records), len(records)


def timed_by_mask_mode(model, channels, function, repeats: int) -> dict[str, float]:
    """Fastest time of ``function`` unmasked, hooked and folded, the three modes alternating so load hits all alike."""
    from critical_neurons.model.folding import masking

    times: dict[str, list[float]] = {"unmasked": [], "hook": [], "fold": []}
    for _ in range(repeats):
        for mode in times:
            with masking(model, channels if mode != "unmasked" else [], mode):
                times[mode].append(timed(function))
    return {mode: min(values) for mode, values in times.items()}


def part_masking(args) -> dict:
    """Forward passes (the perplexity workload) unmasked, with hooks, and with the channels folded into the
    weights; and the largest logit difference between the hooked and the folded model (0: the same model)."""
    from critical_neurons.model.folding import masking

    model, _, input_ids = load(args)
    channels, num_records = masked_channels(model, input_ids, args)
    batch = input_ids.expand(args["batch_size"], -1)
    with torch.no_grad():
        model(input_ids=batch)
        seconds = timed_by_mask_mode(model, channels, lambda: model(input_ids=batch), args["repeats"])
        logits = {}
        for mode in ("hook", "fold"):
            with masking(model, channels, mode):
                logits[mode] = model(input_ids=batch).logits.float()
    return {
        "dtype": str(model.dtype),
        "fold_vs_hook_max_abs_logit_difference": float((logits["hook"] - logits["fold"]).abs().max()),
        "records_masked": num_records,
        "channels_masked": len(channels),
        "sites_masked": len({channel.layer_name for channel in channels}),
        **{f"{mode}_forward_s": round(value, 4) for mode, value in seconds.items()},
        "hook_overhead": round(seconds["hook"] / seconds["unmasked"] - 1, 4),
        "fold_overhead": round(seconds["fold"] / seconds["unmasked"] - 1, 4),
        "fold_throughput_vs_unmasked": round(seconds["unmasked"] / seconds["fold"], 4),
    }


def part_generation(args) -> dict:
    """Batched greedy generation unmasked, with hooks, and folded (fold target: >= 0.97x the unmasked tokens/s)."""
    from critical_neurons.model.perplexity import pad_batch

    model, tokenizer, input_ids = load(args)
    channels, num_records = masked_channels(model, input_ids, args)
    prompts = ["The capital of France is", "Question: What is 2 + 3?\nAnswer:", "def fibonacci(n):", "Once upon a time"] * 2
    ids, mask = pad_batch(tokenizer(prompts)["input_ids"], tokenizer.pad_token_id, left=True)
    ids, mask = ids.to(input_ids.device), mask.to(input_ids.device)
    new_tokens = args["new_tokens"]

    def run() -> None:
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)

    run()
    seconds = timed_by_mask_mode(model, channels, run, args["repeats"])
    tokens = len(prompts) * new_tokens
    return {
        "records_masked": num_records,
        "channels_masked": len(channels),
        "batch": len(prompts),
        "new_tokens": new_tokens,
        **{f"{mode}_tokens_per_s": round(tokens / value, 1) for mode, value in seconds.items()},
        "hook_slowdown": round(seconds["hook"] / seconds["unmasked"] - 1, 4),
        "fold_throughput_vs_unmasked": round(seconds["unmasked"] / seconds["fold"], 4),
        "paths": generation_paths(model, tokenizer, args),
    }


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second moved by a device-to-device copy (read + write), fastest of 5, on 1 GiB (256 MiB on CPU)."""
    size = 2**30 if device.type == "cuda" else 2**28
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = timed(lambda: target.copy_(source), repeats=5)
    return 2 * size / seconds


def throughput_prompts(count: int) -> list[str]:
    """About 130-token prompts of a few lengths: the Bookends text and a numbered question."""
    from critical_neurons.model.folding import BOOKENDS_TEXT

    return [f"{BOOKENDS_TEXT} Question {index}:{' What did the critics say?' * (index % 4)}" for index in range(count)]


def generation_paths(model, tokenizer, args) -> dict:
    """Tokens/s of the evaluators' generation before the plan (eager, dynamic KV cache: "eager") and with it
    ("planned": --compile, static cache, padded batches) at batch 8, 64 and auto, each against the bound.

    End-of-text is switched off so every prompt generates all its tokens. Auto (on CUDA) probes with
    AUTO_BATCH_LIMIT prompts so it can reach the limit; off CUDA auto is the batch-8 row.
    """
    from critical_neurons.evaluation.generation import AUTO_BATCH_LIMIT, generate, plan_generation

    model.generation_config.eos_token_id = None
    device = model.get_input_embeddings().weight.device
    weight_bytes = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    bandwidth = copy_bandwidth(device)
    bound_steps = bandwidth / weight_bytes
    new_tokens, repeats = args["throughput_new_tokens"], args["throughput_repeats"]
    rows = {}
    for label in ("8", "64", "auto"):
        count = AUTO_BATCH_LIMIT if label == "auto" else max(args["throughput_prompts"], int(label))
        prompts = throughput_prompts(count)
        planned = plan_generation(model, tokenizer, prompts, max_new_tokens=new_tokens, batch_size=None if label == "auto" else int(label), compile=args["compile"])
        if label == "auto" and device.type != "cuda":
            rows[label] = {"batch_size": planned.batch_size, "note": "auto uses the fixed default off CUDA: see that row"}
            continue
        row = {"batch_size": planned.batch_size, "prompts": count, "new_tokens": new_tokens}
        for path, compiled in (("eager", False), ("planned", planned.compile)):

            def run(prompts=prompts, compiled=compiled, batch_size=planned.batch_size) -> None:
                generate(model, tokenizer, prompts, max_new_tokens=new_tokens, batch_size=batch_size, compile=compiled, progress=False)

            first_call = timed(run) if compiled else None  # compiles for this batch size (untimed)
            seconds = timed(run, repeats)
            tokens_per_s = count * new_tokens / seconds
            row[path] = {
                "compile": compiled,
                "tokens_per_s": round(tokens_per_s, 1),
                "share_of_bound": round(tokens_per_s / planned.batch_size / bound_steps, 4),
                "first_call_s": round(first_call, 2) if first_call is not None else None,
            }
        rows[label] = row
    return {
        "device": str(device),
        "weight_bytes": weight_bytes,
        "copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 1),
        "bound_decode_steps_per_s": round(bound_steps, 2),
        "batches": rows,
    }


PARTS = {"stage1": part_stage1, "stage2": part_stage2, "masking": part_masking, "generation": part_generation}


def _child(name: str, args: dict, queue) -> None:
    torch.manual_seed(0)
    queue.put(PARTS[name](args))


def part_result(name: str, process, queue) -> dict:
    """The part's figures, or an error once its process has ended without them (its traceback is above)."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"the {name} part ended without a result (exit code {process.exitcode}); see its error above") from None


def load_model_check(model_path: str) -> None:
    """Fail with one line before spawning workers when the model cannot be found."""
    path = Path(model_path)
    if not (path / "config.json").is_file() and not (path.is_file() and path.suffix == ".gguf"):
        raise UsageError("--model_path", f"{model_path} is not a model folder or .gguf file", "run models/prepare_default_model.py or pass a model folder")


def main() -> None:
    from critical_neurons.cli import ArgumentParser
    from critical_neurons.evaluation.generation import COMPILE_CHOICES

    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model_path", default=str(ROOT / "models" / "smollm2-135m"))
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device_map", default=None)
    parser.add_argument("--num_samples", type=int, default=100, help="K")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stage1_repeats", type=int, default=2, help="Stage 1 / floor alternations; the fastest of each counts")
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--throughput_prompts", type=int, default=64, help="prompts per fixed batch size in the generation paths table")
    parser.add_argument("--throughput_new_tokens", type=int, default=64)
    parser.add_argument("--throughput_repeats", type=int, default=1)
    parser.add_argument("--compile", default="auto", choices=COMPILE_CHOICES, help="the planned generation path's --compile")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = [name for name in parts if name not in PARTS]
    if unknown:
        raise UsageError("--parts", f"unknown part {', '.join(unknown)}", f"use a comma-separated subset of {','.join(PARTS)}")
    load_model_check(args.model_path)
    settings = {key: value for key, value in vars(args).items() if key not in ("parts", "output")}
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": multiprocessing.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "settings": settings,
    }
    context = multiprocessing.get_context("spawn")
    for name in parts:
        queue = context.Queue()
        process = context.Process(target=_child, args=(name, settings, queue))
        process.start()
        report[name] = part_result(name, process, queue)
        process.join()
        print(name, json.dumps(report[name]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    from critical_neurons.cli import run

    run(main)
