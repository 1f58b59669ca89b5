"""What made an output: the model's identity, digests of neuron lists and data, and the run key.

Two paths to one model (``./models/x`` and ``models/x``) resolve to one identity; two models never
share a fingerprint unless their configs and weight layouts are equal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from critical_neurons.outputs.records import NeuronRecord

# Config keys that say how a model was loaded or saved, not what it is.
_LOAD_KEYS = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "_attn_implementation", "_attn_implementation_autoset", "use_cache", "quantization_config"}


def digest(payload: Any) -> str:
    """sha256 (16 hex digits) of a JSON-able value in canonical form."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolved_model_path(model_path: str) -> str:
    """The absolute, symlink-free path of a local model (folder or .gguf file); a hub id as given."""
    path = Path(model_path).expanduser()
    return str(path.resolve()) if path.exists() else model_path


def model_fingerprint(model: PreTrainedModel) -> str:
    """Digest of the config (load-time keys dropped) and the weight index (parameter names and shapes).

    Metadata only: no weight is read, so it is cheap for a 70B model spread over GPUs or offloaded.
    """
    config = {key: value for key, value in model.config.to_dict().items() if key not in _LOAD_KEYS}
    weights = [[name, list(parameter.shape)] for name, parameter in model.named_parameters()]
    return digest({"config": config, "weights": weights})


def model_identity(model: PreTrainedModel, model_path: str) -> dict[str, Any]:
    """The ``model`` block of every output."""
    return {
        "path": resolved_model_path(model_path),
        "model_type": model.config.model_type,
        "fingerprint": model_fingerprint(model),
        "num_parameters": sum(parameter.numel() for parameter in model.parameters()),
    }


def same_model(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two ``model`` blocks name one model (type and fingerprint; the path may differ)."""
    return first.get("model_type") == second.get("model_type") and first.get("fingerprint") == second.get("fingerprint")


def records_digest(records: Sequence[NeuronRecord]) -> str:
    """Digest of a neuron list as masking sees it: the ordered (module, position, channel) entries."""
    return digest([[record.layer_name, record.seq_idx, record.hidden_idx] for record in records])


def data_digest(samples: Iterable[Any]) -> str:
    """Digest of the evaluated data: ids and content of the selected samples, in evaluation order."""
    return digest(list(samples))


def run_key(
    model: dict[str, Any],
    *,
    dtype: str,
    records: Sequence[NeuronRecord] | None,
    data: str,
    seed: int,
    selection: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Everything that changes an evaluation's numbers; a file is continued only under an equal key.

    ``data`` is :func:`data_digest` of the selected samples; ``selection`` says how they were chosen.
    """
    return {
        "model_path": model["path"],
        "model_fingerprint": model["fingerprint"],
        "dtype": dtype,
        "neurons": records_digest(records) if records else None,
        "data": data,
        "seed": seed,
        "selection": selection,
        "settings": settings,
    }
