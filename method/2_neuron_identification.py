"""Stage 2: mask the top of a ranking, growing the prefix, until perplexity explodes.

    python method/2_neuron_identification.py --model_path models/smollm2-135m \
        --neuron_file neurons/importance_ranked_neurons.json --test_text "Later reviews were ..." \
        --output_file results/critical_neurons_result.json

Variant: a 5-orders threshold, skipping records that repeat a masked channel, then pruning:
    ... --max_magnitude 5 --scan channels --prune

Variant: mask whole residual-stream dimensions (every writer of the dimension) per step, then prune:
    ... --unit dimension --prune
"""

import logging
import time

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_neuron_file_arguments, encode_text, integer, number, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.method.stage2 import NAN_POLICIES, TEST_TEXT_TOKENS, critical_prefix
from critical_neurons.model.loading import load_model, max_positions, model_info
from critical_neurons.model.residual import dimension_view, plan_dimensions
from critical_neurons.outputs.files import OutputFile, run_metadata
from critical_neurons.outputs.formats.build import critical_set_payload
from critical_neurons.outputs.formats.read import read_neuron_file
from critical_neurons.outputs.run_identity import model_identity

logger = logging.getLogger("stage2")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_neuron_file_arguments(parser, required=True)
    parser.add_argument("--test_text", required=True, help="text whose perplexity is watched (first 512 tokens)")
    parser.add_argument("--step_size", type=integer(1), default=1, help="records added per step (reference CLI default: 1)")
    parser.add_argument("--max_magnitude", type=number(0, inclusive=False), default=1.0, help="stop when log10(ppl / baseline) reaches this (reference CLI default: 1.0)")
    parser.add_argument("--max_steps", type=integer(1), default=1000, help="step cap, as the reference")
    parser.add_argument("--max_length", type=integer(2), default=TEST_TEXT_TOKENS, help=f"tokens of --test_text used (reference: {TEST_TEXT_TOKENS})")
    parser.add_argument("--batch_size", type=integer(1), default=8, help="prefixes evaluated per forward pass; does not change the steps")
    parser.add_argument("--scan", choices=["records", "channels"], default="records", help="channels: skip records repeating an already-masked channel")
    parser.add_argument(
        "--unit", choices=["channel", "dimension"], default="channel",
        help="channel: the paper's search over the ranking; dimension: each step masks --step_size more residual-stream dimensions in every module writing them",
    )
    parser.add_argument("--prune", action="store_true", help="then drop channels while the threshold still holds (a minimal set)")
    parser.add_argument(
        "--nan_policy", choices=NAN_POLICIES, default="stop",
        help="stop: a non-finite perplexity ends the search; continue: the authors' loop (a NaN step is recorded and the search goes on; +inf exceeds the threshold)",
    )
    parser.add_argument("--output_file", default="results/critical_neurons_result.json")
    args = parse_arguments(parser)
    if args.unit == "dimension" and args.scan == "channels":
        raise UsageError("--scan", "channels applies to --unit channel (a dimension step already masks whole channels)", "drop --scan or use --unit channel")
    started = time.time()
    with OutputFile(args.output_file, inputs={"--neuron_file": args.neuron_file}) as output:
        neuron_file = read_neuron_file(args.neuron_file)
        records = neuron_file.records
        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        identity = model_identity(model, args.model_path)
        neuron_file.check_model(identity, args.allow_other_model)
        input_ids = encode_text(tokenizer, args.test_text, "--test_text", min_tokens=2, max_length=args.max_length, max_positions=max_positions(model))
        compute_started = time.time()
        search = dict(step_size=args.step_size, max_magnitude=args.max_magnitude, max_steps=args.max_steps, batch_size=args.batch_size, prune=args.prune, nan_policy=args.nan_policy)
        if args.unit == "dimension":
            plan = plan_dimensions(model, input_ids, records)
            found = critical_prefix(model, input_ids, plan.records, unit_ends=plan.unit_ends, **search)
        else:
            found = critical_prefix(model, input_ids, records, by_channel=args.scan == "channels", **search)
        compute_s = round(time.time() - compute_started, 3)
        result = critical_set_payload(
            found,
            neuron_file=neuron_file,
            test_text=args.test_text,
            num_tokens=int(input_ids.shape[1]),
            step_size=args.step_size,
            max_magnitude=args.max_magnitude,
            nan_policy=args.nan_policy,
            unit=args.unit,
            prune=args.prune,
            model=identity,
            model_info=model_info(model, args.model_path),
            dimension_view=dimension_view(found, plan, args.step_size) if args.unit == "dimension" else None,
            metadata=run_metadata(vars(args), started, compute_s=compute_s),
        )
        final = result["masking_steps"][-1]
        logger.info("Stopped: %s after %d steps", found.stopping_reason, len(found.steps))
        logger.info(
            "Critical set: %d records, %d distinct channels; perplexity %.4g -> %.4g (+%.2f orders of magnitude)",
            len(found.records), len(found.channels), result["baseline_perplexity"], final["masked_perplexity"] or float("inf"), final["magnitude_increase"],
        )
        if found.pruned_channels is not None:
            logger.info("Pruned to %d channels (+%.2f orders of magnitude)", len(found.pruned_channels), result["pruned_magnitude_increase"])
        output.write_json(result)
        logger.info("Wrote %s", output.given)


if __name__ == "__main__":
    run(main)
