"""The paper's tables (Markdown + CSV) and figures (PNG) from the files in neurons/ and results/.

    python ablation/report.py

Variant: another model's outputs, figures in their own folder:
    python ablation/report.py --neurons_dir neurons/llama --results_dir results/llama --assets_dir assets/llama

Reads stage-2 results, evaluator results (WikiText/C4/downstream), the random-masking result and
ablation rankings; every table or figure whose inputs are missing is skipped with a log line.
Comparison sweeps are evaluator files whose neuron file is an AM/GM/stage-1 ranking (or named
am_/gm_/ours_*.json) with at least three of the levels 100..1000.
"""

import argparse
import logging
import os
from pathlib import Path

from critical_neurons.cli import run, setup_logging
from critical_neurons.errors import UsageError
from critical_neurons.figures import plot_ablation, plot_locations, plot_perplexity_curves
from critical_neurons.io import write_text
from critical_neurons.reporting import (
    ABLATION_COLUMNS, BEFORE_AFTER_COLUMNS, COMPARISON_COLUMNS, COMPARISON_LEVELS, CRITICAL_COLUMNS,
    ablation_rows, before_after_rows, comparison_rows, critical_channels, critical_set_rows, is_evaluator,
    is_random_masking, is_ranking, is_stage2, json_files, load_json, method_of, ranking_channels, sweep_curves,
    write_table,
)

logger = logging.getLogger("report")
ABLATIONS = {  # file prefix -> (title, x key, default setting, axis label)
    "noise_scale": ("Noise scale (alpha) ablation", "noise_scale", "noise_scale_5", "noise scale alpha (embedding noise std)"),
    "num_samples": ("Sample count (K) ablation", "num_samples", "num_samples_100", "noisy samples K"),
    "text": ("Input text ablation", None, "text_bookends", None),
}


def readable(folder: str) -> list[tuple[Path, dict]]:
    files = []
    for path in json_files(folder):
        try:
            files.append((path, load_json(path)))
        except (OSError, ValueError):
            logger.warning("Skipping %s: not readable JSON", path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons_dir", default="neurons", help="ranking files (stage 1, AM, GM)")
    parser.add_argument("--results_dir", default="results", help="stage-2, evaluator and random-masking results")
    parser.add_argument("--ablation_dir", default="results/ablation", help="outputs of ablation/*.sh")
    parser.add_argument("--ranking", default=None, help="ranking whose top records the location figure shows (default: NEURONS_DIR/importance_ranked_neurons.json)")
    parser.add_argument("--location_top", type=int, default=1000, help="top records of --ranking placed in the location figure")
    parser.add_argument("--top_k", type=int, default=100, help="distinct channels compared in the ablation overlap")
    parser.add_argument("--output_dir", default="results/report", help="tables: report.md and one .md/.csv per table")
    parser.add_argument("--assets_dir", default="assets", help="PNG figures")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args()
    setup_logging(args.log_level)
    if args.location_top < 1 or args.top_k < 1:
        raise UsageError("--location_top/--top_k", "must be at least 1", "use e.g. 1000 and 100")
    out, assets = Path(args.output_dir), Path(args.assets_dir)
    results = readable(args.results_dir)
    stage2 = [(path, payload) for path, payload in results if is_stage2(payload)]
    randoms = [(path, payload) for path, payload in results if is_random_masking(payload)]
    evaluators = [(path, payload) for path, payload in results if is_evaluator(payload)]
    sweeps = [(p, d) for p, d in evaluators if method_of(p, d) and len({e["masking_level"] for e in d["results"]} & set(COMPARISON_LEVELS)) >= 3]
    sweep_paths = {path for path, _ in sweeps}
    single = [(path, payload) for path, payload in evaluators if path not in sweep_paths]
    curves = sweep_curves(sweeps, randoms)
    sections, figures = ["# Results report\n"], []

    for rows, stem, title, columns in (
        (critical_set_rows(stage2), "critical_neurons", "Critical neurons and perplexity per model (stage 2, test text)", CRITICAL_COLUMNS),
        (before_after_rows(single), "before_after", "Scores before and after masking", BEFORE_AFTER_COLUMNS),
        (comparison_rows(curves) if curves else [], "baselines", "Perplexity with N neurons masked: ours vs baselines", COMPARISON_COLUMNS),
    ):
        if rows:
            sections.append(write_table(out / stem, title, rows, columns))
        else:
            logger.info("No inputs for the table %r; skipped", title)

    if curves:
        figures.append(plot_perplexity_curves(curves, assets / "perplexity_vs_neurons_masked.png"))

    ranking_path = Path(args.ranking or Path(args.neurons_dir) / "importance_ranked_neurons.json")
    if ranking_path.is_file() and is_ranking(ranking := load_json(ranking_path)):
        ranking["top_neurons"] = ranking["top_neurons"][: args.location_top]
        critical = critical_channels(stage2[0][1]) if stage2 else []
        title = f"Where the top {args.location_top} ranked records sit ({ranking_path.name})"
        figures.append(plot_locations(ranking_channels(ranking), critical, assets / "critical_neuron_locations.png", title))
    else:
        logger.info("No ranking at %s; location figure skipped", ranking_path)

    plotted = {}
    for prefix, (title, key, default, label) in ABLATIONS.items():
        files = sorted(Path(args.ablation_dir).glob(f"{prefix}_*_neurons.json"))
        default_file = Path(args.ablation_dir) / f"{default}_neurons.json"
        if not files or not default_file.is_file():
            logger.info("No %s ablation in %s; skipped", prefix, args.ablation_dir)
            continue
        rows = ablation_rows(files, default_file, top_k=args.top_k)
        sections.append(write_table(out / f"ablation_{prefix}", title, rows, ABLATION_COLUMNS))
        if key:
            plotted[label] = (key, rows)
    if plotted:
        figures.append(plot_ablation(plotted, assets / "ablation_agreement.png"))

    sections.append("### Figures\n\n" + "\n".join(f"![{path.stem}]({os.path.relpath(path, out)})" for path in figures) + "\n")
    write_text(out / "report.md", "\n".join(sections))
    print("\n".join(sections))
    logger.info("Wrote %s (%d tables) and %d figures in %s", out / "report.md", len(sections) - 2, len(figures), assets)


if __name__ == "__main__":
    run(main)
