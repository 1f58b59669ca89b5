"""Print a stage-2 result as a short table, or (``--count``) only its number of critical records for shell scripts.

    python -m critical_neurons.reporting.console results/critical_neurons_result.json
    critical=$(python -m critical_neurons.reporting.console --count results/critical_neurons_result.json)
"""

from __future__ import annotations

from typing import Any

from critical_neurons.cli import ArgumentParser, run
from critical_neurons.outputs.formats import CRITICAL_SET
from critical_neurons.outputs.formats.read import read_output

SHOWN = 20


def _perplexity(value: float | None, log10_value: float) -> str:
    return f"{value:.4g}" if value is not None else f"1e{log10_value:.1f}"


def critical_set_table(result: dict[str, Any]) -> str:
    """The critical records, distinct channels, baseline and masked perplexity, orders of magnitude."""
    final = result["masking_steps"][-1]
    lines = [
        f"{'rank':>4}  {'module':<40} {'channel':>7} {'position':>8} {'score':>12}",
        *(
            f"{rank:>4}  {record['layer_name']:<40} {record['hidden_idx']:>7} {record['seq_idx']:>8} {record['activation_diff']:>12.4g}"
            for rank, record in enumerate(result["final_masked_neurons"][:SHOWN], start=1)
        ),
        *([f"      ... {len(result['final_masked_neurons']) - SHOWN} more records"] if len(result["final_masked_neurons"]) > SHOWN else []),
        "",
        f"stopping reason       {result['stopping_reason']}",
        f"critical records      {result['num_critical_records']}",
        f"distinct channels     {result['num_critical_channels']}: "
        + ", ".join(f"{channel['layer_name']}[{channel['hidden_idx']}]" for channel in result["critical_channels"][:10])
        + (" ..." if result["num_critical_channels"] > 10 else ""),
        f"baseline perplexity   {_perplexity(result['baseline_perplexity'], result['baseline_log10_perplexity'])}",
        f"masked perplexity     {_perplexity(final['masked_perplexity'], final['log10_perplexity'])}",
        f"orders of magnitude   {final['magnitude_increase']:+.2f}" if final["magnitude_increase"] is not None else "orders of magnitude   non-finite",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("result", metavar="RESULT", nargs="?", default="results/critical_neurons_result.json", help="a stage-2 result (kind critical_set)")
    parser.add_argument("--count", action="store_true", help="print only num_critical_records")
    args = parser.parse_args()
    result = read_output(args.result, CRITICAL_SET, "RESULT", "rerun method/2_neuron_identification.py")
    print(result["num_critical_records"] if args.count else critical_set_table(result))


if __name__ == "__main__":
    run(main)
