"""Every output kind round-trips through its builder and reader; files of the previous version read or are refused in one line."""

from __future__ import annotations

import ast
import json
import math

import pytest
from conftest import ROOT, run_script

from critical_neurons.errors import UsageError
from critical_neurons.method.baselines import Population
from critical_neurons.method.ranking import Ranking
from critical_neurons.method.stage2 import CriticalSet, MaskingStep
from critical_neurons.model.folding import FoldEdit
from critical_neurons.model.perplexity import PerplexityResult
from critical_neurons.outputs import formats
from critical_neurons.outputs.files import write_json
from critical_neurons.outputs.formats.build import (
    ablation_summary_payload,
    characterization_payload,
    critical_set_payload,
    evaluation_header,
    lesion_payload,
    random_masking_header,
    ranking_payload,
)
from critical_neurons.outputs.formats.read import NeuronFile, check_output, read_neuron_file, read_output, read_ranking_file
from critical_neurons.outputs.records import Channel, NeuronRecord
from critical_neurons.reporting.results import read_result

MODEL = {"path": "models/tiny", "model_type": "llama", "fingerprint": "abc123"}
RECORDS = [NeuronRecord("model.layers.1.mlp.down_proj", 0, 7, 9.5), NeuronRecord("model.layers.1.mlp.down_proj", 3, 7, 4.0), NeuronRecord("model.layers.0.mlp.up_proj", 1, 2, 1.5)]
CHANNELS = [record.channel for record in RECORDS[::2]]
METADATA = {"arguments": {}, "wall_time_s": 1.0}
TEXT = "Later reviews were more positive."


def ranking() -> dict:
    return ranking_payload(
        Ranking(RECORDS, total_candidates=40, sites=["model.layers.0.mlp.up_proj", "model.layers.1.mlp.down_proj"]),
        method="importance", input_text=TEXT, noise_scale=5.0, num_samples=100, num_tokens=8, model=MODEL, model_info={"dtype": "float32"}, metadata=METADATA,
    )


def found_set(pruned: bool = False) -> CriticalSet:
    steps = [MaskingStep(1, 1, 1, 1.2), MaskingStep(2, 2, 1, 2.5)]
    return CriticalSet(1.0, steps, "threshold", RECORDS[:2], forward_passes=1, pruned_channels=CHANNELS[:1] if pruned else None, pruned_log10_perplexity=2.4 if pruned else None)


def critical_set(pruned: bool = False, dimension_view: dict | None = None) -> dict:
    source = NeuronFile("neurons/ranking.json", ranking(), "top_neurons", RECORDS)
    return critical_set_payload(
        found_set(pruned), neuron_file=source, test_text=TEXT, num_tokens=8, step_size=1, max_magnitude=1.0, nan_policy="stop", unit="channel", prune=pruned,
        model=MODEL, model_info={"dtype": "float32"}, dimension_view=dimension_view, metadata=METADATA,
    )


def levels(header: dict, metric: str) -> dict:
    """As LevelRunner completes a header: the run key, the level entries, the metadata."""
    return {**header, "run_key": {"model": "abc123"}, "results": [{"masking_level": 0, "distinct_channels_masked": 0, metric: 20.0}], "metadata": METADATA}


def evaluation() -> dict:
    header = evaluation_header(method="wikitext", primary_metric="perplexity", reference_metric=None, model=MODEL, model_info={"neuron_method": "importance"}, dataset_info={"num_texts": 4}, settings={"batch_size": 8})
    return levels(header, "perplexity")


def random_masking() -> dict:
    header = random_masking_header(
        Population("sites", ("model.layers.0.mlp.up_proj",), (16,)), model=MODEL, model_info={"population_size": 16}, dataset_info={"num_texts": 4},
        settings={"num_runs": 2}, levels=[0, 10], num_runs=2, seed=0,
    )
    return levels(header, "mean_perplexity")


def characterization() -> dict:
    found = {"channels": [], "controls": {"leave_one_out": [], "random_sets": {"num_sets": 0}}}
    return characterization_payload(found, model=MODEL, settings={"records_used": 2}, test_text=TEXT, metadata=METADATA)


def lesion() -> dict:
    result = PerplexityResult(20.0, math.log(20.0), math.log10(20.0), 7, 1, 0, 21.0, math.log(21.0), math.log10(21.0))
    masked = PerplexityResult(2000.0, math.log(2000.0), math.log10(2000.0), 7, 1, 0, 2100.0, math.log(2100.0), math.log10(2100.0))
    source = NeuronFile("results/critical.json", critical_set(), "final_masked_neurons", RECORDS[:2])
    edits = [FoldEdit("model.layers.1.mlp.down_proj", "model.layers.1.mlp.down_proj.weight", 0, (7,), 0.0)]
    return {
        **lesion_payload(model=MODEL, neuron_file=source, records=RECORDS[:2], channels=CHANNELS[:1], edits=edits, fold_check={"max_abs_diff": 0.0}, test_text=TEXT, max_length=512, before=result, after=masked),
        "files": {"mode": "copy"},
        "metadata": METADATA,
    }


def ablation_summary() -> dict:
    return ablation_summary_payload(name="noise_scale", title="noise scale", default_ranking="noise_scale_5_neurons.json", top_k=100, model=MODEL, rows=[{"setting": "noise_scale_5", "overlap": 1.0}], metadata=METADATA)


BUILDERS = {
    formats.RANKING: ranking,
    formats.CRITICAL_SET: critical_set,
    formats.EVALUATION: evaluation,
    formats.RANDOM_MASKING: random_masking,
    formats.CHARACTERIZATION: characterization,
    formats.LESION: lesion,
    formats.ABLATION_SUMMARY: ablation_summary,
}


def test_every_kind_has_a_builder():
    assert set(BUILDERS) == set(formats.KINDS)


@pytest.mark.parametrize("kind", formats.KINDS)
def test_every_kind_round_trips_through_builder_and_reader(kind, tmp_path):
    path = tmp_path / f"{kind}.json"
    payload = BUILDERS[kind]()
    write_json(path, payload)
    read = read_output(str(path), kind, "--file", "rerun it")
    assert read == json.loads(path.read_text()) and read["kind"] == kind and set(read) == set(payload)
    result = read_result(path)
    assert result is not None and result.kind == kind and result.payload == json.loads(path.read_text())


@pytest.mark.parametrize("kind", formats.KINDS)
def test_a_file_of_one_kind_is_refused_as_another(kind, tmp_path):
    path = tmp_path / "out.json"
    write_json(path, BUILDERS[kind]())
    other = next(candidate for candidate in formats.KINDS if candidate != kind)
    with pytest.raises(UsageError, match=f"is not a {other} result \\(kind '{kind}'\\); rerun it$"):
        read_output(str(path), other, "--file", "rerun it")


def test_critical_set_keys_are_those_consumers_read():
    plain, pruned = critical_set(), critical_set(pruned=True, dimension_view={"dimensions": [7]})
    assert list(plain)[:11] == ["kind", "method", "ranking_method", "baseline_perplexity", "baseline_log10_perplexity", "test_text", "step_size", "max_magnitude_increase", "nan_policy", "unit", "prune"]
    assert plain["final_masked_neurons"] == [record.to_dict() for record in RECORDS[:2]] and plain["num_critical_records"] == 2
    assert plain["critical_channels"] == [CHANNELS[0]._asdict()] and plain["num_critical_channels"] == 1 and plain["ranking_method"] == "importance"
    assert plain["masking_steps"][-1]["magnitude_increase"] == pytest.approx(1.5) and list(plain)[-1] == "metadata"
    assert "pruned_channels" not in plain and "dimension_view" not in plain
    assert pruned["pruned_channels"] == [CHANNELS[0]._asdict()] and pruned["pruned_magnitude_increase"] == pytest.approx(1.4) and pruned["dimension_view"] == {"dimensions": [7]}


def test_a_critical_set_is_a_neuron_file_of_its_kind(tmp_path):
    path = tmp_path / "critical.json"
    write_json(path, critical_set())
    neuron_file = read_neuron_file(str(path))
    assert neuron_file.kind == formats.CRITICAL_SET and neuron_file.records == RECORDS[:2] and neuron_file.test_text == TEXT
    assert lesion()["neuron_file_kind"] == formats.CRITICAL_SET


@pytest.mark.parametrize("kind", [formats.CRITICAL_SET, formats.EVALUATION, formats.LESION])
def test_a_broken_shape_is_one_line_saying_how_to_regenerate(kind, tmp_path):
    path = tmp_path / "broken.json"
    write_json(path, {**BUILDERS[kind](), "model": {"path": "m"}})
    with pytest.raises(UsageError) as error:
        read_output(str(path), kind, "--file", "rerun it")
    assert "broken shape" in str(error.value) and str(error.value).endswith("; rerun it") and "\n" not in str(error.value)


def test_a_critical_set_of_the_previous_version_still_reads(tmp_path):
    """Before unit, prune and dimension_view were recorded: Stage 2's file of the previous version."""
    older = {key: value for key, value in critical_set().items() if key not in ("unit", "prune", "dimension_view")}
    path = tmp_path / "critical.json"
    write_json(path, older)
    assert read_output(str(path), formats.CRITICAL_SET, "RESULT", "rerun stage 2")["num_critical_records"] == 2
    assert read_result(path) is not None and read_neuron_file(str(path)).kind == formats.CRITICAL_SET


def test_a_file_without_kind_is_refused_in_one_line_saying_how_to_regenerate_it(tmp_path):
    """Outputs written before files recorded their kind (and other tools' files) are refused by readers that need a kind."""
    path = tmp_path / "old.json"
    write_json(path, {key: value for key, value in evaluation().items() if key != "kind"})
    with pytest.raises(UsageError) as error:
        read_output(str(path), formats.EVALUATION, "RESULT", "rerun evaluation/wikitext_evaluator.py")
    message = str(error.value)
    assert "no 'kind' field" in message and message.endswith("rerun evaluation/wikitext_evaluator.py") and "\n" not in message
    with pytest.raises(ValueError, match=r"no 'kind' field .*; rerun the step that wrote it$"):
        check_output(json.loads(path.read_text()))


def test_an_authors_ranking_without_kind_still_reads_as_a_ranking(tmp_path):
    path = tmp_path / "authors.json"
    path.write_text(json.dumps({"top_neurons": [record.to_dict() for record in RECORDS]}))
    assert read_ranking_file(str(path), "--rankings").records == RECORDS
    write_json(path, critical_set())
    with pytest.raises(UsageError, match="is not a ranking file"):
        read_ranking_file(str(path), "--rankings")


# Strings spelled like a kind that name something else: (file, text on the line).
NOT_KINDS = {
    ("critical_neurons/reporting/characterization_figures.py", 'prefix: str = "characterization"'),  # figure file names
    ("comparison/random_masking.py", 'getLogger("random_masking")'),  # the script's logger
    ("method/wikitext_evaluator.py", '/ "evaluation" /'),  # the evaluation/ folder
    ("scripts/authors_drivers/simpleqa.py", 'scoring_fields("response", "is_meaningful", "evaluation")'),  # the authors' per-sample field
}


def kind_literals(source: str) -> list[int]:
    """Lines that spell the ``kind`` key, or a kind's name as a value (a dict key or an index spelled like a
    kind names a field, e.g. the authors' per-sample ``evaluation`` block, and is not a kind)."""
    tree = ast.parse(source)
    field_names = {id(node) for parent in ast.walk(tree) for node in (parent.keys if isinstance(parent, ast.Dict) else [parent.slice] if isinstance(parent, ast.Subscript) else [])}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and (node.value == "kind" or (node.value in formats.KINDS and id(node) not in field_names))
    ]


def test_no_kind_literal_outside_the_formats_package():
    """Every kind is named through its constant, so a kind is spelled in one place."""
    found = []
    for folder in ("critical_neurons", "method", "comparison", "ablation", "evaluation", "scripts", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            name = str(path.relative_to(ROOT))
            if path.suffix not in (".py", ".sh") or name.startswith("critical_neurons/outputs/formats/"):
                continue
            lines = path.read_text().splitlines()
            numbers = kind_literals("\n".join(lines)) if path.suffix == ".py" else [number for number, line in enumerate(lines, start=1) if '"kind"' in line]
            found += [f"{name}:{number}: {lines[number - 1].strip()}" for number in numbers if not any(name == file and text in lines[number - 1] for file, text in NOT_KINDS)]
    assert found == []


def test_the_kind_scan_finds_a_kind_spelled_as_a_value():
    assert kind_literals('payload = {"kind": "ranking", "evaluation": {}}\nif other == "critical_set":\n    pass\n') == [1, 1, 2]
    assert kind_literals('block = {"evaluation": scores}\nscores = detail["evaluation"]\n') == []


def test_shell_scripts_do_no_json_surgery():
    assert not [path for path in (ROOT / "ablation").glob("*.sh") if "python -c" in path.read_text()]


def test_count_prints_the_critical_set_size(tmp_path):
    path = tmp_path / "critical.json"
    write_json(path, critical_set())
    result = run_script("critical_neurons/reporting/console.py", "--count", path, check=True)
    assert result.stdout.strip() == "2"
    write_json(path, evaluation())
    refused = run_script("critical_neurons/reporting/console.py", path)
    assert refused.returncode == 2 and "is not a critical_set result" in refused.stderr


def test_channels_in_a_lesion_are_channels():
    assert [Channel(**entry) for entry in lesion()["channels"]] == CHANNELS[:1]
