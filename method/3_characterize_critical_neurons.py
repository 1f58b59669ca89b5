"""Characterise a critical set: why do these neurons collapse the model?

Per critical channel: its output at every position (peak, token, ratio to the module's median:
a massive activation?), the same dimension through the residual stream, the inputs whose w*x make
the peak (super-weight candidates), and what masking it does (KL, top-1 agreement, perplexity,
attention mass on the first token per layer); controls: each channel alone, the set without each
channel, and same-size random sets from the same module type and layers.

    python method/3_characterize_critical_neurons.py --model_path models/smollm2-135m \
        --neuron_file results/critical_neurons_result.json --output_file results/characterization.json

A Stage-2 result gives the critical set and its test text; a ranking file needs --num_neurons
(and --text unless its input text is wanted). Figures go to --assets_dir.
"""

import argparse
import logging
import time

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_neuron_file_arguments, encode_text, integer, number, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.evaluation.tasks.language_modeling import wikitext_texts
from critical_neurons.method.characterization import MASSIVE_RATIO, MAX_RANDOM_SETS, characterize
from critical_neurons.model.loading import load_model, max_positions
from critical_neurons.outputs.files import OutputFile, check_output_path, run_metadata
from critical_neurons.outputs.formats import CHARACTERIZATION
from critical_neurons.outputs.formats.build import characterization_payload
from critical_neurons.outputs.formats.read import NeuronFile, previous_output, read_neuron_file
from critical_neurons.outputs.records import distinct_channels
from critical_neurons.outputs.run_identity import model_identity, records_digest
from critical_neurons.reporting.characterization_figures import plot_characterization
from critical_neurons.reporting.characterization_tables import markdown_tables

logger = logging.getLogger("characterize")


def chosen_text(args: argparse.Namespace, neuron_file: NeuronFile) -> tuple[str, str, str]:
    """The text, where it came from, and the flag a bad text is blamed on: --text, a row of --dataset_path, or the neuron file's own text."""
    if args.text is not None:
        return args.text, "--text", "--text"
    if args.dataset_path is not None:
        texts = wikitext_texts(args.dataset_path)
        if args.text_index >= len(texts):
            raise UsageError("--text_index", f"{args.dataset_path} has {len(texts)} texts of more than 50 characters, so there is no index {args.text_index}", "pick a smaller index")
        return texts[args.text_index], f"{args.dataset_path} text {args.text_index}", "--dataset_path"
    text = neuron_file.test_text or neuron_file.payload.get("input_text")
    if not isinstance(text, str):
        raise UsageError("--text", f"{args.neuron_file} records no test_text or input_text", "pass --text or --dataset_path")
    return text, f"{neuron_file.key} file's {'test_text' if neuron_file.test_text else 'input_text'}", "--neuron_file"


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_neuron_file_arguments(parser, required=True)
    parser.add_argument("--num_neurons", type=integer(1), default=None, help="use the first N records (required for a ranking file)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", default=None, help="text to characterise on (default: the neuron file's test_text)")
    source.add_argument("--dataset_path", default=None, help="json/jsonl/parquet/csv file with a 'text' field, or a wiki.test.tokens file")
    parser.add_argument("--text_index", type=integer(0), default=0, help="which text of --dataset_path (texts of more than 50 characters, in file order)")
    parser.add_argument("--max_length", type=integer(2), default=512, help="tokens of the text used (as Stage 2)")
    parser.add_argument("--num_random_sets", type=integer(0, MAX_RANDOM_SETS), default=10, help=f"random same-size control sets (0: none; at most {MAX_RANDOM_SETS})")
    parser.add_argument("--top_inputs", type=integer(1), default=5, help="inputs listed per channel in the weight profile")
    parser.add_argument("--massive_ratio", type=number(0, inclusive=False), default=MASSIVE_RATIO, help="peak / median |output| from which an activation counts as massive")
    parser.add_argument("--assets_dir", default="assets", help="folder of the two figures")
    parser.add_argument("--output_file", default="results/characterization.json")
    args = parse_arguments(parser)
    started = time.time()
    for name in ("residual_stream", "activation_profile"):
        check_output_path(f"{args.assets_dir}/characterization_{name}.png", "--assets_dir")
    with OutputFile(args.output_file, inputs={"--neuron_file": args.neuron_file}) as output:
        previous_output(output, CHARACTERIZATION)
        neuron_file = read_neuron_file(args.neuron_file)
        records = neuron_file.records
        if args.num_neurons is None and not neuron_file.is_critical_set:
            raise UsageError("--num_neurons", f"{args.neuron_file} is a ranking ('{neuron_file.key}'), not a critical set", "pass --num_neurons N (e.g. the Stage-2 critical-set size)")
        if args.num_neurons is not None and args.num_neurons > len(records):
            logger.warning("--num_neurons %d exceeds the %d records of %s: using all of them", args.num_neurons, len(records), args.neuron_file)
        records = records[: args.num_neurons]
        text, text_source, text_flag = chosen_text(args, neuron_file)

        model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
        identity = model_identity(model, args.model_path)
        neuron_file.check_model(identity, args.allow_other_model)
        input_ids = encode_text(tokenizer, text, text_flag, min_tokens=2, max_length=args.max_length, max_positions=max_positions(model))
        channels = distinct_channels(records)
        logger.info("Characterising %d channels on %d tokens (%s)", len(channels), input_ids.shape[1], text_source)
        compute_started = time.time()
        found = characterize(
            model, tokenizer, input_ids, channels,
            num_random_sets=args.num_random_sets, seed=args.seed, top_inputs=args.top_inputs, massive_ratio=args.massive_ratio,
        )
        compute_s = round(time.time() - compute_started, 3)
        result = characterization_payload(
            found,
            model=identity,
            settings={
                "neuron_file": args.neuron_file,
                "neuron_list_digest": records_digest(records),
                "records_used": len(records),
                "channels": [channel._asdict() for channel in channels],
                "text_source": text_source,
                "max_length": args.max_length,
                "num_random_sets": args.num_random_sets,
                "seed": args.seed,
                "top_inputs": args.top_inputs,
                "massive_ratio": args.massive_ratio,
                "dtype": str(model.dtype).removeprefix("torch."),
            },
            test_text=text,
            metadata=run_metadata(vars(args), started, compute_s=compute_s),
        )
        output.write_json(result)
    figures = plot_characterization(result, args.assets_dir)
    print(markdown_tables(result), flush=True)
    logger.info("Wrote %s and %s", output.path, ", ".join(map(str, figures)))


if __name__ == "__main__":
    run(main)
