"""The paper's tables (Markdown + CSV) and figures (PNG) from the files in neurons/ and results/.

    python ablation/report.py

Variant: another folder's outputs, figures in their own folder:
    python ablation/report.py --neurons_dir neurons/llama --results_dir results/llama --assets_dir assets/llama

Each file says what it is: `kind` (critical_set, evaluation, random_masking, ranking), `method` (the
task of an evaluation) and `primary_metric` (its headline metric), and for which model (`model`).
Files without `kind` (older outputs, the authors' own files) or with a broken shape are skipped with
one warning each. Every table keeps one row per model and every figure one panel per model: two
models' files are never merged or compared. Comparison sweeps are perplexity evaluations of a
stage-1, AM or GM ranking (`model_info.neuron_method`) with at least three of the levels 100..1000;
every other evaluation joins the before/after table. A table or figure whose inputs are missing is
skipped with a log line.
"""

import logging
import os
from pathlib import Path
from typing import Any

from critical_neurons.cli import ArgumentParser, integer, parse_arguments, run
from critical_neurons.outputs.files import check_output_path, write_text
from critical_neurons.outputs.formats import CHARACTERIZATION, CRITICAL_SET, EVALUATION, RANDOM_MASKING, RANKING
from critical_neurons.outputs.formats.read import critical_channels, ranking_channels
from critical_neurons.reporting.characterization_tables import markdown_tables
from critical_neurons.reporting.figures import plot_ablation, plot_locations, plot_perplexity_curves
from critical_neurons.reporting.results import json_files, model_key, model_labels, of_kind, paired_critical_set, read_result, read_results
from critical_neurons.reporting.tables import (
    ABLATION_COLUMNS,
    BEFORE_AFTER_COLUMNS,
    COMPARISON_COLUMNS,
    CRITICAL_COLUMNS,
    ablation_rows,
    before_after_rows,
    comparison_rows,
    critical_set_rows,
    sweep_curves,
    sweep_method,
    write_table,
)

logger = logging.getLogger("report")
ABLATIONS = {  # file prefix -> (title, x key, default setting, axis label)
    "noise_scale": ("Noise scale (alpha) ablation", "noise_scale", "noise_scale_5", "noise scale alpha (embedding noise std)"),
    "num_samples": ("Sample count (K) ablation", "num_samples", "num_samples_100", "noisy samples K"),
    "text": ("Input text ablation", None, "text_bookends", None),
}


def ablation_tables(folder: Path, top_k: int, out: Path) -> tuple[list[str], dict[str, tuple[str, list[dict[str, Any]]]]]:
    """One table per ablation found in ``folder`` (its default setting's model only) and the figure's panels."""
    sections: list[str] = []
    plotted: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for prefix, (title, key, default_name, label) in ABLATIONS.items():
        default_path = folder / f"{default_name}_neurons.json"
        paths = sorted(folder.glob(f"{prefix}_*_neurons.json"))
        if not paths or not default_path.is_file():
            logger.info("No %s ablation in %s; skipped", prefix, folder)
            continue
        rankings = []
        for result in read_results(paths):
            if result.kind == RANKING:
                rankings.append(result)
            else:
                logger.warning("Skipping %s: a %s file, not a ranking", result.path, result.kind)
        default = next((result for result in rankings if result.path == default_path), None)
        if default is None:
            logger.warning("The %s ablation has no usable default ranking %s; skipped", prefix, default_path)
            continue
        rows = ablation_rows(rankings, default, top_k=top_k)
        sections.append(write_table(out / f"ablation_{prefix}", title, rows, ABLATION_COLUMNS))
        if key:
            plotted[label] = (key, rows)
    return sections, plotted


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--neurons_dir", default="neurons", help="ranking files (stage 1, AM, GM)")
    parser.add_argument("--results_dir", default="results", help="stage-2, evaluator and random-masking results")
    parser.add_argument("--ablation_dir", default="results/ablation", help="outputs of ablation/*.sh")
    parser.add_argument("--ranking", default=None, help="ranking whose top records the location figure shows (default: NEURONS_DIR/importance_ranked_neurons.json)")
    parser.add_argument("--location_top", type=integer(1), default=1000, help="top records of --ranking placed in the location figure")
    parser.add_argument("--top_k", type=integer(1), default=100, help="distinct channels compared in the ablation overlap")
    parser.add_argument("--output_dir", default="results/report", help="tables: report.md and one .md/.csv per table")
    parser.add_argument("--assets_dir", default="assets", help="PNG figures")
    parser.add_argument("--log_file", default=None, help="also append the log to this file")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parse_arguments(parser)
    out, assets = Path(args.output_dir), Path(args.assets_dir)
    check_output_path(str(out / "report.md"), "--output_dir")
    check_output_path(str(assets / "perplexity_vs_neurons_masked.png"), "--assets_dir")

    results = read_results(json_files(args.results_dir))
    ranking_path = Path(args.ranking or Path(args.neurons_dir) / "importance_ranked_neurons.json")
    ranking = read_result(ranking_path) if ranking_path.is_file() else None
    labels = model_labels([*results, *([ranking] if ranking else [])])
    stage2 = of_kind(results, CRITICAL_SET)
    evaluations = of_kind(results, EVALUATION)
    sweeps = [(result, method) for result in evaluations if (method := sweep_method(result))]
    swept = {result.path for result, _ in sweeps}
    curves = sweep_curves(sweeps, of_kind(results, RANDOM_MASKING), labels)
    sections, figures = ["# Results report\n"], []

    for rows, stem, title, columns in (
        (critical_set_rows(stage2, labels), "critical_neurons", "Critical neurons and perplexity per model (stage 2, test text)", CRITICAL_COLUMNS),
        (before_after_rows([result for result in evaluations if result.path not in swept], labels), "before_after", "Scores before and after masking", BEFORE_AFTER_COLUMNS),
        (comparison_rows(curves), "baselines", "Perplexity with N neurons masked: ours vs baselines, per model", COMPARISON_COLUMNS),
    ):
        if rows:
            sections.append(write_table(out / stem, title, rows, columns))
        else:
            logger.info("No inputs for the table %r; skipped", title)

    for result in of_kind(results, CHARACTERIZATION):
        title = f"What the critical neurons are: {labels[model_key(result.model)]} ({result.path.name})"
        section = f"### {title}\n\n{markdown_tables(result.payload)}\n"
        write_text(out / f"characterization_{result.path.stem}.md", section, "--output_dir")
        sections.append(section)

    if curves:
        panels = {f"{model}: {task} perplexity": methods for (model, task), methods in curves.items()}
        figures.append(plot_perplexity_curves(panels, assets / "perplexity_vs_neurons_masked.png"))

    if ranking is not None and ranking.kind == RANKING:
        critical = paired_critical_set(ranking, stage2)
        title = f"Where the top {args.location_top} ranked records of {labels[model_key(ranking.model)]} sit ({ranking_path.name})"
        channels = ranking_channels({"top_neurons": ranking.payload["top_neurons"][: args.location_top]})
        figures.append(plot_locations(channels, critical_channels(critical.payload) if critical else [], assets / "critical_neuron_locations.png", title))
    elif ranking is not None:
        logger.warning("Skipping %s: a %s file, not a ranking; location figure skipped", ranking_path, ranking.kind)
    else:
        logger.info("No usable ranking at %s; location figure skipped", ranking_path)

    ablation_sections, plotted = ablation_tables(Path(args.ablation_dir), args.top_k, out)
    sections += ablation_sections
    if plotted:
        figures.append(plot_ablation(plotted, assets / "ablation_agreement.png"))

    sections.append("### Figures\n\n" + "\n".join(f"![{path.stem}]({os.path.relpath(path, out)})" for path in figures) + "\n")
    write_text(out / "report.md", "\n".join(sections), "--output_dir")
    print("\n".join(sections))
    logger.info("Wrote %s (%d tables) and %d figures in %s", out / "report.md", len(sections) - 2, len(figures), assets)


if __name__ == "__main__":
    run(main)
