"""Summarise an ablation: critical-set size per setting and agreement of its ranking with the default setting.

    python ablation/summarize.py --rankings results/ablation/noise_scale_*_neurons.json \
        --default results/ablation/noise_scale_5_neurons.json --output results/ablation/noise_scale_summary.md

Each ranking ``X_neurons.json`` is paired with its stage-2 result ``X_critical.json`` (written by the
ablation loops). Where that file is missing, ``--model_path`` runs stage 2 through the core on the
ranking's own input text; without it the size columns stay empty. Writes Markdown and CSV.
"""

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from critical_neurons.cli import encode_text, run, setup_logging
from critical_neurons.errors import UsageError
from critical_neurons.identification import critical_prefix
from critical_neurons.io import check_output_path, load_neuron_records, read_json
from critical_neurons.models import DTYPE_CHOICES, load_model
from critical_neurons.reporting import ABLATION_COLUMNS, ablation_rows, is_ranking, write_table

logger = logging.getLogger("summarize")


def stage2_runner(model_path: str, dtype: str, max_magnitude: float) -> Callable[[Path, dict], dict]:
    """Load the model once; return a function running stage 2 on a ranking with its own input text."""
    model, tokenizer = load_model(model_path, dtype)

    def stage2(path: Path, ranking: dict) -> dict:
        logger.info("Running stage 2 for %s", path)
        input_ids = encode_text(tokenizer, ranking["input_text"], "--rankings", min_tokens=2, max_length=512)
        found = critical_prefix(model, input_ids, load_neuron_records(str(path), "--rankings"), max_magnitude=max_magnitude)
        return {
            "final_masked_neurons": [record.to_dict() for record in found.records],
            "masking_steps": [step.to_dict(found.baseline_log10_perplexity) for step in found.steps],
            "stopping_reason": found.stopping_reason,
        }

    return stage2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rankings", nargs="+", required=True, help="ranking files, one per setting (stage-1 format)")
    parser.add_argument("--default", required=True, help="ranking of the default setting (alpha 5, K 100) the others are compared with")
    parser.add_argument("--top_k", type=int, default=100, help="distinct channels compared for overlap and rank correlation")
    parser.add_argument("--output", required=True, help="Markdown file; a CSV with the same stem is written beside it")
    parser.add_argument("--title", default=None, help="table heading (default: from the output name)")
    parser.add_argument("--model_path", default=None, help="run stage 2 for rankings without an X_critical.json (default: leave empty)")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="with --model_path")
    parser.add_argument("--max_magnitude", type=float, default=1.0, help="with --model_path: stage-2 threshold in orders of magnitude (reference: 1.0)")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args()
    setup_logging(args.log_level)
    if args.top_k < 1:
        raise UsageError("--top_k", f"must be at least 1, got {args.top_k}", "use e.g. 100")
    output = check_output_path(args.output, "--output")
    for flag, paths in (("--rankings", args.rankings), ("--default", [args.default])):
        for path in paths:
            if not is_ranking(read_json(path, flag)):
                raise UsageError(flag, f"{path} is not a ranking file (no method/top_neurons)", "pass files written by stage 1, AM or GM")

    stage2 = stage2_runner(args.model_path, args.dtype, args.max_magnitude) if args.model_path else None
    rows = ablation_rows(args.rankings, args.default, top_k=args.top_k, stage2=stage2)
    title = args.title or output.stem.replace("_", " ")
    section = write_table(output.with_suffix(""), title, rows, ABLATION_COLUMNS)
    print(section)
    logger.info("Wrote %s and %s", output.with_suffix(".md"), output.with_suffix(".csv"))


if __name__ == "__main__":
    run(main)
