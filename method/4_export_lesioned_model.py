"""Export a lesioned model: the critical neurons zeroed in the weights, as a standard Hugging Face folder.

    python method/4_export_lesioned_model.py --model_path models/smollm2-135m \
        --neuron_file results/critical_neurons_result.json --output_dir models/smollm2-135m-lesioned

Variant: the first 100 records of a ranking, unchanged files hard-linked instead of copied:
    ... --neuron_file neurons/importance_ranked_neurons.json --num_neurons 100 --link

The folder loads with plain transformers, lm-eval (--model hf) and vLLM; lesion.json records what was
removed, the fold check against hook masking and the perplexity before and after.
"""

import logging
import time

from critical_neurons.cli import ArgumentParser, add_model_arguments, add_neuron_file_arguments, encode_text, integer, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.model.export import EXPORT_FIX, check_output_dir, model_card, staging_dir, write_lesioned_model
from critical_neurons.model.folding import BOOKENDS_TEXT, check_fold, folded, plan_folds
from critical_neurons.model.loading import load_model, max_positions
from critical_neurons.model.perplexity import perplexity
from critical_neurons.outputs.files import run_metadata, write_json, write_text
from critical_neurons.outputs.formats.build import lesion_payload
from critical_neurons.outputs.formats.read import read_neuron_file
from critical_neurons.outputs.records import distinct_channels
from critical_neurons.outputs.run_identity import digest, model_identity

logger = logging.getLogger("export")


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_model_arguments(parser)
    add_neuron_file_arguments(parser, required=True)  # a Stage-2 result: its critical set is removed
    parser.add_argument("--num_neurons", type=integer(1), default=None, help="remove the channels of the first N records (required for a ranking file)")
    parser.add_argument("--output_dir", required=True, help="new folder for the lesioned model (must not exist or be empty, not inside the source)")
    parser.add_argument("--link", action="store_true", help="hard-link unchanged files instead of copying them (same file system; they then share the source's inodes)")
    parser.add_argument("--test_text", default=None, help="text for perplexity before and after (default: the Stage-2 result's test text, else the Bookends text)")
    parser.add_argument("--max_length", type=integer(2), default=512, help="tokens of the test text used, as Stage 2")
    args = parse_arguments(parser)
    started = time.time()
    target = check_output_dir(args.output_dir, args.model_path, link=args.link)
    neurons = read_neuron_file(args.neuron_file)
    records = neurons.records
    if args.num_neurons is not None:
        if args.num_neurons > len(records):
            logger.warning("--num_neurons %d exceeds the %d records of %s; removing all of them", args.num_neurons, len(records), args.neuron_file)
        records = records[: args.num_neurons]
    elif not neurons.is_critical_set:
        raise UsageError("--num_neurons", f"{args.neuron_file} is a ranking, not a Stage-2 result, so the number of records to remove must be given", "pass --num_neurons N")

    model, tokenizer = load_model(args.model_path, args.dtype, args.device_map, args.trust_remote_code)
    identity = model_identity(model, args.model_path)
    neurons.check_model(identity, args.allow_other_model)
    channels = distinct_channels(records)
    edits = plan_folds(model, channels, flag="--neuron_file", fix=EXPORT_FIX)
    text = args.test_text or neurons.test_text or BOOKENDS_TEXT
    input_ids = encode_text(tokenizer, text, "--test_text", min_tokens=2, max_length=args.max_length, max_positions=max_positions(model))
    fold_check = check_fold(model, input_ids, channels, flag="--neuron_file", fix=EXPORT_FIX)
    before = perplexity(model, tokenizer, [text], max_length=args.max_length, progress=False)
    with folded(model, channels):
        after = perplexity(model, tokenizer, [text], max_length=args.max_length, progress=False)
    logger.info("Removing %d channels: perplexity %.4g -> %.4g (log10 %+.2f)", len(channels), before.perplexity, after.perplexity, after.log10_perplexity - before.log10_perplexity)

    lesion = lesion_payload(
        model=identity, neuron_file=neurons, records=records, channels=channels, edits=edits, fold_check=fold_check,
        test_text=text, max_length=args.max_length, before=before, after=after,
    )
    lesion_config = {"source_fingerprint": identity["fingerprint"], "channels_digest": digest(lesion["channels"]), "num_channels": len(channels), "details": "lesion.json"}
    with staging_dir(target) as staging:
        lesion["files"] = write_lesioned_model(model, tokenizer, args.model_path, channels, edits, staging, link=args.link, lesion_config=lesion_config)
        lesion["metadata"] = run_metadata(vars(args), started)
        write_json(staging / "lesion.json", lesion, "--output_dir")
        write_text(staging / "README.md", model_card(lesion, target), "--output_dir")
    logger.info("Wrote %s (%s)", target, lesion["files"]["mode"])


if __name__ == "__main__":
    run(main)
