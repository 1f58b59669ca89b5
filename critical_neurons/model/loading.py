"""Loading a causal LM (HF folder, hub id or GGUF file) once, for every script."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.errors import UsageError

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` is float32 on CPU (half precision is slow and lossy there) and bfloat16 on GPU."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise UsageError("--dtype", f"unknown dtype {name!r}", f"use one of {', '.join(DTYPE_CHOICES)}") from None


_DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def resolve_device_map(device_map: str | None) -> Any:
    """Where ``from_pretrained`` puts the model: one device by default, or an accelerate strategy.

    A device that is not here (``cuda:3`` on a 1-GPU box, ``cuda`` without a GPU) is refused before
    any weight loads.
    """
    if device_map in (None, "", "none"):
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device_map in _DEVICE_MAP_STRATEGIES:
        return device_map
    try:
        device = torch.device(device_map)
    except (RuntimeError, ValueError):
        raise UsageError("--device_map", f"{device_map!r} is neither a device nor one of {', '.join(_DEVICE_MAP_STRATEGIES)}", 'use "auto", "cpu" or "cuda:0"') from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UsageError("--device_map", f"{device_map} is not a device of this machine ({torch.cuda.device_count()} GPUs visible)", 'use "cpu", "auto" or a visible GPU')
    backend = getattr(torch, device.type, None)
    if device.type not in ("cpu", "cuda") and not (backend is not None and backend.is_available()):
        raise UsageError("--device_map", f"{device_map} is not available on this machine", 'use "cpu" or "auto"')
    return str(device)


def _source(model_path: str) -> tuple[str, dict[str, Any]]:
    """Where ``from_pretrained`` should look, and the GGUF file name if any."""
    path = Path(model_path).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise UsageError("--model_path", f"{model_path} is a file but not a .gguf model", "pass a model folder or a .gguf file")
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError("--model_path", f"{model_path} has no config.json, so it is not a model folder", "point it at a Hugging Face model folder")
        return str(path), {}
    if _HUB_ID.match(model_path) and not model_path.startswith("."):
        return model_path, {}
    raise UsageError("--model_path", f"{model_path} does not exist", "download the model (see README) or run models/prepare_default_model.py")


def load_model(
    model_path: str,
    dtype: str = "auto",
    device_map: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer in eval mode.

    ``device_map=None`` puts the whole model on one device (the first GPU, else CPU);
    ``"auto"`` lets accelerate spread it over every visible GPU (and CPU) for 70B-class models.
    A tokenizer without a pad token gets EOS, as in the reference.
    """
    source, extra = _source(model_path)
    torch_dtype = resolve_dtype(dtype)
    placement = resolve_device_map(device_map)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, device_map=placement, trust_remote_code=trust_remote_code, **extra
        )
    except Exception as error:  # a truncated GGUF or broken shard fails deep in the loaders with any error type
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError("--model_path", f"cannot load {model_path} ({first_line})", "check the path, or pass --trust_remote_code for custom code") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    logger.info("Loaded %s (%s) as %s on %s", model_path, model.config.model_type, torch_dtype, device_summary(model))
    return model, tokenizer


def device_summary(model: PreTrainedModel) -> dict[str, int]:
    """Module count per device: the short form of ``hf_device_map`` for logs and metadata."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        return dict(Counter(str(device) for device in device_map.values()))
    return {str(next(model.parameters()).device): 1}


def input_device(model: PreTrainedModel) -> torch.device:
    """Where input ids must go: the device of the input embedding table."""
    return model.get_input_embeddings().weight.device


def max_positions(model: PreTrainedModel) -> int | None:
    """The longest input the model's position embeddings allow, when the config says."""
    return getattr(model.config, "max_position_embeddings", None)


def model_info(model: PreTrainedModel, model_path: str) -> dict[str, Any]:
    return {
        "model_path": model_path,
        "model_type": model.config.model_type,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device_map": device_summary(model),
        "num_gpus": torch.cuda.device_count(),
    }
