"""Readers of every output kind: the shape each kind must have, checked before anything uses a file.

Scripts get one-line :class:`~critical_neurons.errors.UsageError` messages naming the flag; the report
gets a one-line ValueError per unusable file from :func:`load_output` (it skips that file with one warning).
Files without ``kind`` (the authors' rankings, outputs of versions before kinds were recorded) still
read as neuron files; everything else asks for ``kind`` and says how to regenerate a file without it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critical_neurons.errors import UsageError
from critical_neurons.outputs.files import OutputFile, read_json
from critical_neurons.outputs.formats import ABLATION_SUMMARY, CHARACTERIZATION, CRITICAL_SET, EVALUATION, LESION, RANDOM_MASKING, RANKING
from critical_neurons.outputs.records import Channel, NeuronRecord
from critical_neurons.outputs.run_identity import same_model

logger = logging.getLogger(__name__)

NEURON_LIST_KEYS = ("top_neurons", "neurons", "final_masked_neurons")
MODEL_KEYS = ("path", "model_type", "fingerprint")


# ---- neuron files (rankings and critical sets as inputs of a run) ------------------------------


@dataclass
class NeuronFile:
    """A ranking file (``top_neurons``) or a Stage-2 result (``final_masked_neurons``), read and checked."""

    path: str
    payload: dict[str, Any]
    key: str
    records: list[NeuronRecord]
    flag: str = "--neuron_file"

    @property
    def is_critical_set(self) -> bool:
        return self.key == "final_masked_neurons"

    @property
    def kind(self) -> str:
        """What the records come from, judged by where they sit (the authors' files record no ``kind``)."""
        return CRITICAL_SET if self.is_critical_set else RANKING

    @property
    def model(self) -> dict[str, Any] | None:
        model = self.payload.get("model")
        return model if isinstance(model, dict) else None

    @property
    def test_text(self) -> str | None:
        text = self.payload.get("test_text")
        return text if isinstance(text, str) else None

    def check_model(self, identity: dict[str, Any], allow_other_model: bool = False) -> None:
        """Refuse a file made for another model (type and fingerprint), unless ``allow_other_model``.

        Files that record no model (the authors' own, or older ones) are accepted with a warning.
        """
        recorded = self.model
        if recorded is None:
            logger.warning("%s records no model, so it cannot be checked against %s", self.path, identity["path"])
            return
        if same_model(recorded, identity):
            return
        problem = (
            f"{self.path} was made for the {recorded.get('model_type')} model {recorded.get('path')} "
            f"(fingerprint {recorded.get('fingerprint')}), not this {identity['model_type']} model {identity['path']} "
            f"(fingerprint {identity['fingerprint']})"
        )
        if not allow_other_model:
            raise UsageError(self.flag, problem, "use a neuron file made for this model, or pass --allow_other_model")
        logger.warning("%s; used anyway (--allow_other_model)", problem)


def read_neuron_file(path: str, flag: str = "--neuron_file") -> NeuronFile:
    """Records from a ranking file (``top_neurons``/``neurons``) or a stage-2 result (``final_masked_neurons``).

    An empty list or a malformed record is an error (the reference silently masked nothing);
    non-finite scores are kept with a warning.
    """
    payload = read_json(path, flag)
    if not isinstance(payload, dict):
        raise UsageError(flag, f"{path} holds no neuron list", "pass a ranking file or a stage-2 result")
    key = next((key for key in NEURON_LIST_KEYS if isinstance(payload.get(key), list)), None)
    if key is None:
        raise UsageError(flag, f"{path} has none of the keys {', '.join(NEURON_LIST_KEYS)}", "pass a ranking file or a stage-2 result")
    entries = payload[key]
    if not entries:
        raise UsageError(flag, f"{path} has an empty '{key}' list", "rerun the step that wrote it")
    records = []
    for index, entry in enumerate(entries):
        try:
            records.append(NeuronRecord.from_dict(entry))
        except ValueError as error:
            raise UsageError(flag, f"{path}: record {index} of '{key}' is malformed ({error})", "regenerate the file") from None
    non_finite = sum(not math.isfinite(record.score) for record in records)
    if non_finite:
        logger.warning("%s: %d records have a non-finite score (null); they keep their place in the list", path, non_finite)
    return NeuronFile(path, payload, key, records, flag)


def read_ranking_file(path: str, flag: str) -> NeuronFile:
    """A ranking (stage 1, AM, GM; the authors' own, which record no kind, too); a critical set or another kind is refused."""
    neuron_file = read_neuron_file(path, flag)
    kind = neuron_file.payload.get("kind", RANKING)
    if neuron_file.key != "top_neurons" or kind != RANKING:
        raise UsageError(flag, f"{path} is not a ranking file (kind {kind}, records under '{neuron_file.key}')", "pass files written by stage 1, AM or GM")
    return neuron_file


# ---- kinds and shapes --------------------------------------------------------------------------


def kind_of(payload: Any) -> str | None:
    """The kind an output records; None for anything that records none."""
    kind = payload.get("kind") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else None


def _missing_kind(payload: Any) -> str | None:
    """Why ``payload`` records no usable kind; None when it records one."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    if "kind" not in payload:
        return "no 'kind' field (an older output or another tool's file)"
    if not isinstance(payload["kind"], str):
        return f"'kind' is not a string ({payload['kind']!r:.40})"
    return None


def check_output(payload: Any) -> str:
    """The kind of a well-formed output; a one-line ValueError saying why ``payload`` is not one."""
    problem = _missing_kind(payload)
    if problem is not None:
        raise ValueError(f"{problem}; rerun the step that wrote it")
    kind = payload["kind"]
    try:
        check_shape(payload)
    except ValueError as error:
        raise ValueError(f"a {kind} file with a broken shape ({error})") from None
    return kind


def load_output(path: str | Path) -> dict[str, Any]:
    """A well-formed output read from ``path``; a one-line ValueError saying why it is not one (the report skips such files)."""
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except OSError as error:
        raise ValueError(f"not readable ({error.strerror or error})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to be a result file") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not valid JSON ({' '.join(str(error).split())})") from None
    check_output(payload)
    return payload


def check_shape(payload: dict[str, Any]) -> None:
    """ValueError saying what is wrong when ``payload`` does not have the shape its ``kind`` needs."""
    SHAPE_CHECKS.get(payload["kind"], _no_check)(payload)


def require_kind(payload: Any, kind: str, path: str, flag: str, fix: str) -> dict[str, Any]:
    """``payload`` when it is a ``kind`` output; one line naming ``flag`` and ``fix`` otherwise."""
    problem = _missing_kind(payload)
    if problem is not None:
        raise UsageError(flag, f"{path} is not a {kind} result ({problem})", fix)
    if payload["kind"] != kind:
        raise UsageError(flag, f"{path} is not a {kind} result (kind {payload['kind']!r})", fix)
    return payload


def read_output(path: str, kind: str, flag: str, fix: str) -> dict[str, Any]:
    """A ``kind`` output whose shape fits its kind; one line naming ``flag`` and ``fix`` (how to regenerate it) otherwise."""
    payload = require_kind(read_json(path, flag), kind, path, flag, fix)
    try:
        check_shape(payload)
    except ValueError as error:
        raise UsageError(flag, f"{path} is a {kind} file with a broken shape ({error})", fix) from None
    return payload


def previous_output(output: OutputFile, kind: str) -> dict[str, Any] | None:
    """The output already there when it is a ``kind`` output of this toolkit, None when there is none;
    anything else is refused naming the flag, so a run never overwrites another kind of file."""
    if not output.exists():
        return None
    return require_kind(output.read_json(), kind, output.given, output.flag, "choose another output file or move the old one away")


def previous_levels(output: OutputFile, kind: str) -> dict[str, Any] | None:
    """As :func:`previous_output`, for outputs resumed per masking level: ``results`` must be level
    entries, each with an integer ``masking_level`` (checked before any model loads or level runs)."""
    previous = previous_output(output, kind)
    if previous is not None:
        results = previous.get("results", [])
        if not isinstance(results, list) or not all(isinstance(entry, dict) and type(entry.get("masking_level")) is int for entry in results):
            raise UsageError(output.flag, f"{output.given} has a broken 'results' list (not a list of levels, each with an integer masking_level)", "choose another output file or move the old one away")
    return previous


def valid_model(model: Any) -> bool:
    """A ``model`` identity block with the path, type and fingerprint every comparison uses."""
    return isinstance(model, dict) and all(isinstance(model.get(key), str) and model[key] for key in MODEL_KEYS)


def is_number(value: Any) -> bool:
    """A JSON number a float can hold (an integer past 1e308 would overflow every later computation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _numbers(entry: dict[str, Any], names: Iterable[str], where: str) -> None:
    """Each of ``names`` present in ``entry`` is a number or null."""
    for name in names:
        value = entry.get(name)
        if value is not None and not is_number(value):
            raise ValueError(f"{where}: '{name}' is not a number ({value!r:.40})")


def record_channels(entries: Any, key: str) -> list[Channel]:
    """Distinct channels of a record list, best first; ValueError naming the first malformed record."""
    if not isinstance(entries, list):
        raise ValueError(f"'{key}' is not a list")
    channels = []
    for index, entry in enumerate(entries):
        try:
            channels.append(NeuronRecord.from_dict(entry).channel)
        except ValueError as error:
            raise ValueError(f"record {index} of '{key}' is malformed ({error})") from None
    return list(dict.fromkeys(channels))


def ranking_channels(payload: dict[str, Any]) -> list[Channel]:
    """Distinct channels of a ranking file, best first (first appearance of each channel)."""
    return record_channels(payload.get("top_neurons"), "top_neurons")


def critical_channels(payload: dict[str, Any]) -> list[Channel]:
    """The critical channels of a stage-2 result."""
    return record_channels(payload.get("final_masked_neurons"), "final_masked_neurons")


def _check_identity(payload: dict[str, Any]) -> None:
    if not isinstance(payload.get("method"), str) or not payload["method"]:
        raise ValueError("no 'method'")
    if not valid_model(payload.get("model")):
        raise ValueError("no 'model' block with path, model_type and fingerprint")


def _check_ranking(payload: dict[str, Any]) -> None:
    _check_identity(payload)
    ranking_channels(payload)


def _check_critical_set(payload: dict[str, Any]) -> None:
    _check_identity(payload)
    critical_channels(payload)
    steps = payload.get("masking_steps")
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise ValueError("'masking_steps' is not a list of objects")
    _numbers(payload, ("baseline_perplexity",), "the file")
    for step in steps[-1:]:
        _numbers(step, ("log10_perplexity", "magnitude_increase"), "the last masking step")


def _check_levels(payload: dict[str, Any], extra: Sequence[str]) -> None:
    """``results`` is a non-empty list of level entries, each with a level and a numeric headline metric."""
    _check_identity(payload)
    metric = payload.get("primary_metric")
    if not isinstance(metric, str) or not metric:
        raise ValueError("no 'primary_metric'")
    if not isinstance(payload.get("model_info", {}), dict):
        raise ValueError("'model_info' is not an object")
    results = payload.get("results")
    if not isinstance(results, list) or not results:
        raise ValueError("'results' is not a non-empty list")
    for index, entry in enumerate(results):
        if not isinstance(entry, dict):
            raise ValueError(f"results[{index}] is not an object")
        level = entry.get("masking_level")
        if type(level) is not int or not 0 <= level < 2**53:  # levels are plotted as floats
            raise ValueError(f"results[{index}] has no masking_level (a non-negative integer)")
        if metric not in entry:
            raise ValueError(f"results[{index}] has no '{metric}' (the file's primary_metric)")
        _numbers(entry, (metric, f"log10_{metric}", *extra), f"results[{index}]")


def _check_evaluation(payload: dict[str, Any]) -> None:
    _check_levels(payload, ("distinct_channels_masked",))
    neuron_method = payload.get("model_info", {}).get("neuron_method")
    if neuron_method is not None and not isinstance(neuron_method, str):
        raise ValueError("'model_info.neuron_method' is not a string")


def _check_random_masking(payload: dict[str, Any]) -> None:
    _check_levels(payload, ("std_perplexity", "min_log10_perplexity", "max_log10_perplexity"))


def _check_characterization(payload: dict[str, Any]) -> None:
    from critical_neurons.reporting.characterization_tables import markdown_tables  # the tables live with the report, which imports this module

    _check_identity(payload)
    try:
        markdown_tables(payload)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ValueError(f"its tables cannot be drawn ({type(error).__name__}: {error})") from None


def _check_lesion(payload: dict[str, Any]) -> None:
    _check_identity(payload)
    record_channels(payload.get("channels"), "channels")
    if not isinstance(payload.get("perplexity"), dict):
        raise ValueError("'perplexity' is not an object")


def _check_ablation_summary(payload: dict[str, Any]) -> None:
    """The summary of an ablation over the authors' rankings records no model, so only its rows are required."""
    if not isinstance(payload.get("method"), str) or not payload["method"]:
        raise ValueError("no 'method'")
    rows = payload.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("'rows' is not a list of objects")


def _no_check(payload: dict[str, Any]) -> None:
    """Kinds of other tools or later versions are kept unchecked (readers ignore kinds they do not use)."""


SHAPE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    RANKING: _check_ranking,
    CRITICAL_SET: _check_critical_set,
    EVALUATION: _check_evaluation,
    RANDOM_MASKING: _check_random_masking,
    CHARACTERIZATION: _check_characterization,
    LESION: _check_lesion,
    ABLATION_SUMMARY: _check_ablation_summary,
}

