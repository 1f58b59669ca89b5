"""Summarise an ablation: critical-set size per setting and agreement of its ranking with the default setting.

    python ablation/summarize.py --rankings results/ablation/noise_scale_*_neurons.json \
        --default results/ablation/noise_scale_5_neurons.json --output results/ablation/noise_scale_summary.md

Each ranking ``X_neurons.json`` is paired with its stage-2 result ``X_critical.json`` (written by the
ablation loops). Where that file is missing or unusable, ``--model_path`` runs stage 2 through the
core on the ranking's own input text; without it the size columns stay empty. Rankings made for
another model than the default ranking's are skipped with a warning: models are never compared.
Writes Markdown, CSV and a JSON (kind ``ablation_summary``) with the same stem.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from critical_neurons.cli import ArgumentParser, encode_text, integer, number, parse_arguments, run
from critical_neurons.errors import UsageError
from critical_neurons.method.stage2 import TEST_TEXT_TOKENS, critical_prefix
from critical_neurons.model.loading import DTYPE_CHOICES, load_model
from critical_neurons.outputs.files import OutputFile, check_output_path, run_metadata, write_json
from critical_neurons.outputs.formats.build import ablation_summary_payload, critical_set_search
from critical_neurons.outputs.formats.read import read_neuron_file, read_ranking_file
from critical_neurons.outputs.run_identity import model_identity
from critical_neurons.reporting.results import ResultFile
from critical_neurons.reporting.tables import ABLATION_COLUMNS, ablation_rows, write_table

logger = logging.getLogger("summarize")


def read_ranking(path: str, flag: str) -> ResultFile:
    """A ranking file (stage 1, AM, GM; the authors' own too), its records checked, as the report reads it."""
    return ResultFile(Path(path), read_ranking_file(path, flag).payload)


def stage2_runner(model_path: str, dtype: str, max_magnitude: float, allow_other_model: bool) -> Callable[[ResultFile], dict[str, Any]]:
    """Load the model once; return a function running stage 2 on a ranking of this model with its own input text."""
    model, tokenizer = load_model(model_path, dtype)
    identity = model_identity(model, model_path)

    def stage2(ranking: ResultFile) -> dict[str, Any]:
        logger.info("Running stage 2 for %s", ranking.path)
        neuron_file = read_neuron_file(str(ranking.path), "--rankings")
        neuron_file.check_model(identity, allow_other_model)
        text = ranking.payload.get("input_text")
        if not isinstance(text, str):
            raise UsageError("--rankings", f"{ranking.path} records no input_text to run stage 2 on", "write its X_critical.json with method/2_neuron_identification.py")
        input_ids = encode_text(tokenizer, text, "--rankings", min_tokens=2, max_length=TEST_TEXT_TOKENS)
        found = critical_prefix(model, input_ids, neuron_file.records, max_magnitude=max_magnitude)
        return critical_set_search(found)

    return stage2


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--rankings", nargs="+", required=True, help="ranking files, one per setting (stage-1 format)")
    parser.add_argument("--default", required=True, help="ranking of the default setting (alpha 5, K 100) the others are compared with")
    parser.add_argument("--top_k", type=integer(1), default=100, help="distinct channels compared for overlap and rank correlation")
    parser.add_argument("--output", required=True, help="Markdown file; a CSV and a JSON with the same stem are written beside it")
    parser.add_argument("--title", default=None, help="table heading (default: from the output name)")
    parser.add_argument("--model_path", default=None, help="run stage 2 for rankings without an X_critical.json (default: leave empty)")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="with --model_path")
    parser.add_argument("--max_magnitude", type=number(0, inclusive=False), default=1.0, help="with --model_path: stage-2 threshold in orders of magnitude (reference: 1.0)")
    parser.add_argument("--allow_other_model", action="store_true", help="with --model_path: run stage 2 on rankings made for another model (refused by default)")
    parser.add_argument("--log_file", default=None, help="also append the log to this file")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parse_arguments(parser)
    started = time.time()
    stem = Path(args.output).with_suffix("")
    inputs = {"--default": args.default, **{f"--rankings {path}": path for path in args.rankings}}
    with OutputFile(f"{stem}.md", "--output", inputs) as output:
        for sibling in (f"{stem}.csv", f"{stem}.json"):
            check_output_path(sibling, "--output", inputs)
        rankings = [read_ranking(path, "--rankings") for path in args.rankings]
        default = read_ranking(args.default, "--default")
        stage2 = stage2_runner(args.model_path, args.dtype, args.max_magnitude, args.allow_other_model) if args.model_path else None
        rows = ablation_rows(rankings, default, top_k=args.top_k, stage2=stage2)
        name = stem.name.removesuffix("_summary")
        title = args.title or stem.name.replace("_", " ")
        section = write_table(stem, title, rows, ABLATION_COLUMNS, "--output")
        summary = ablation_summary_payload(
            name=name, title=title, default_ranking=args.default, top_k=args.top_k, model=default.model, rows=rows, metadata=run_metadata(vars(args), started),
        )
        write_json(f"{stem}.json", summary, "--output")
        print(section)
        logger.info("Wrote %s, %s.csv and %s.json", output.given, stem, stem)


if __name__ == "__main__":
    run(main)
