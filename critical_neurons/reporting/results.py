"""Reading result files for the report: each output JSON checked, its kind, method and model from the file itself.

Everything here reads plain JSON written by the scripts; nothing loads a model. A file says what it
is (``kind``), what made it (``method``, ``primary_metric``) and for which model (``model``): the
report reads those and never guesses from keys or file names, and it never merges or compares two
models' files.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from critical_neurons.outputs.formats.read import is_number, kind_of, load_output, valid_model
from critical_neurons.outputs.records import Channel
from critical_neurons.outputs.run_identity import same_model

logger = logging.getLogger(__name__)

LAYER_INDEX = re.compile(r"\.(\d+)\.")
ModelKey = tuple[str, str]  # (model_type, fingerprint): what makes two files one model's


# ---- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultFile:
    """One output JSON, read and checked: its kind, method and model come from the file itself."""

    path: Path
    payload: dict[str, Any]

    @property
    def kind(self) -> str | None:
        return kind_of(self.payload)

    @property
    def method(self) -> str:
        return str(self.payload.get("method"))

    @property
    def model(self) -> dict[str, Any] | None:
        """The ``model`` block, or None where the file records none (the authors' files, older outputs)."""
        model = self.payload.get("model")
        return model if valid_model(model) else None


def json_files(folder: str | Path) -> list[Path]:
    """The JSON files directly in ``folder`` (none when it does not exist), sorted by name."""
    folder = Path(folder)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def skip_file(path: Path, reason: str) -> None:
    logger.warning("Skipping %s: %s", path, reason)


def read_result(path: str | Path) -> ResultFile | None:
    """A toolkit output whose shape fits its ``kind``; None, after one warning naming the file, for anything else.

    Unreadable files, invalid or absurdly nested JSON, files without ``kind`` (older outputs, the
    authors' own files) and files of a known kind with a broken shape are all skipped: a report
    over a folder of mixed files must never stop on one of them.
    """
    path = Path(path)
    try:
        payload = load_output(path)
    except ValueError as error:
        return skip_file(path, str(error))
    return ResultFile(path, payload)


def read_results(paths: Iterable[str | Path]) -> list[ResultFile]:
    """The readable, well-formed outputs among ``paths`` (see :func:`read_result`)."""
    return [result for result in map(read_result, paths) if result is not None]


def of_kind(results: Iterable[ResultFile], kind: str) -> list[ResultFile]:
    return [result for result in results if result.kind == kind]


# ---- models ----------------------------------------------------------------------------------


def model_key(model: dict[str, Any]) -> ModelKey:
    return model["model_type"], model["fingerprint"]


def model_labels(results: Iterable[ResultFile]) -> dict[ModelKey, str]:
    """A row label per model: its folder name, plus the first 8 characters of the fingerprint where two models share a name."""
    names: dict[ModelKey, str] = {}
    for result in sorted(results, key=lambda result: str(result.path)):
        if result.model is not None:
            names.setdefault(model_key(result.model), Path(result.model["path"]).name)
    shared = Counter(names.values())
    return {key: name if shared[name] == 1 else f"{name}@{key[1][:8]}" for key, name in names.items()}


def paired_critical_set(ranking: ResultFile, stage2_results: Iterable[ResultFile]) -> ResultFile | None:
    """The stage-2 result shown with a ranking: one of the same model, preferably the one made from this ranking."""
    same = [result for result in stage2_results if ranking.model is not None and result.model is not None and same_model(ranking.model, result.model)]
    made_from = [result for result in same if Path(str(result.payload.get("neuron_file"))).resolve() == ranking.path.resolve()]
    return (made_from or same or [None])[0]


def comparable(reference: ResultFile, other: ResultFile) -> bool:
    """Whether ``other`` may be compared with ``reference``: the same model, or (with a warning) a file that records none."""
    if other.path.resolve() == reference.path.resolve():
        return True
    if reference.model is None or other.model is None:
        missing = reference.path if reference.model is None else other.path
        logger.warning("%s records no model, so %s and %s are compared without a model check", missing, other.path, reference.path)
        return True
    if same_model(reference.model, other.model):
        return True
    logger.warning(
        "Skipping %s: made for the model %s (fingerprint %s), not for %s (fingerprint %s) like %s; models are never compared",
        other.path, other.model["path"], other.model["fingerprint"], reference.model["path"], reference.model["fingerprint"], reference.path,
    )
    return False


def log10_of(entry: dict[str, Any], key: str) -> float | None:
    """log10 of a perplexity, from the ``log10_<key>`` field written beside it (it survives overflow) or the value."""
    if entry.get(f"log10_{key}") is not None:
        return float(entry[f"log10_{key}"])
    value = entry.get(key)
    return math.log10(value) if is_number(value) and value > 0 else None


def spread_statistics(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, max and sample std of a few values (random controls, repeated runs)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def channel_label(channel: Channel) -> str:
    """``module[index]``, how tables and logs name a channel."""
    return f"{channel.layer_name}[{channel.hidden_idx}]"


def layer_and_type(layer_name: str) -> tuple[int | None, str]:
    """``model.layers.11.mlp.down_proj`` -> (11, ``mlp.down_proj``); names without a layer index -> (None, name)."""
    match = LAYER_INDEX.search(layer_name)
    if match is None:
        return None, layer_name
    return int(match.group(1)), layer_name[match.end() :]


def location_counts(channels: Iterable[Channel]) -> tuple[list[int], list[str], np.ndarray]:
    """Distinct channels per (layer, module type): layers 0..last, module types by total count, (types, layers) counts."""
    pairs = [layer_and_type(channel.layer_name) for channel in channels]
    pairs = [(layer, kind) for layer, kind in pairs if layer is not None]
    layers = list(range(max((layer for layer, _ in pairs), default=-1) + 1))  # every layer, empty ones too
    kinds = sorted({kind for _, kind in pairs}, key=lambda kind: -sum(k == kind for _, k in pairs))
    counts = np.zeros((len(kinds), len(layers)), dtype=int)
    for layer, kind in pairs:
        counts[kinds.index(kind), layers.index(layer)] += 1
    return layers, kinds, counts
