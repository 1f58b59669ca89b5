"""Export a lesioned model: folded channels written into a standard Hugging Face folder.

For a local safetensors checkpoint only the shards holding edited tensors are rewritten (read from the
source, edited in their stored dtype, written anew) and every other file is copied or hard-linked, so
exporting a 70B model costs the few shards touched and the source is only read. Other sources (a GGUF
file, a hub id, a ``.bin`` checkpoint) are saved whole with ``save_pretrained``. Everything goes into a
temp folder beside the target, renamed at the end: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from critical_neurons.errors import UsageError
from critical_neurons.model.folding import FoldEdit, apply_folds
from critical_neurons.outputs.files import current_umask, existing_ancestor, write_text
from critical_neurons.outputs.records import Channel

logger = logging.getLogger(__name__)

EXPORT_FIX = "export only channels of Linear/Conv1D projections, norms and MLP activations"
SAFETENSORS_INDEX = "model.safetensors.index.json"
# Files of the source that the export writes itself, and weight formats that would hold unlesioned weights.
WRITTEN = {"config.json", "README.md", "lesion.json"}
OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".safetensors")


def safetensors_weight_map(folder: Path) -> dict[str, str] | None:
    """Tensor name -> shard file of a local safetensors checkpoint (sharded with an index, or one file), else None."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    single = folder / "model.safetensors"
    if single.is_file():
        with safe_open(str(single), "pt") as handle:
            return dict.fromkeys(handle.keys(), single.name)
    return None


def local_checkpoint(model_path: str) -> Path | None:
    """The source folder when it is a local safetensors checkpoint (the case where shards are rewritten)."""
    folder = Path(model_path).expanduser()
    if folder.is_dir() and safetensors_weight_map(folder) is not None:
        return folder
    return None


def check_output_dir(output_dir: str, model_path: str, *, link: bool) -> Path:
    """The resolved target, checked before the model loads.

    Refused: a file, an existing non-empty folder, the source folder or a folder inside it, an
    unwritable place; with ``link``, a source that is not a local safetensors folder or lies on
    another file system (hard links cannot cross file systems).
    """
    target = Path(os.path.realpath(Path(output_dir).expanduser()))
    if target.exists() and not target.is_dir():
        raise UsageError("--output_dir", f"{output_dir} is a file", "give a new folder name")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError("--output_dir", f"{output_dir} exists and is not empty", "give a new folder name")
    source = Path(model_path).expanduser()
    if source.is_dir():
        source = Path(os.path.realpath(source))
        if target == source or source in target.parents:
            raise UsageError("--output_dir", f"{output_dir} is the source model folder or inside it", "choose a folder outside the source")
    ancestor = existing_ancestor(target.parent)
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError("--output_dir", f"cannot create {output_dir} ({ancestor} is not a writable folder)", "choose a writable place")
    if link:
        folder = local_checkpoint(model_path)
        if folder is None:
            raise UsageError("--link", f"{model_path} is not a local safetensors model folder, so there is nothing to link", "drop --link")
        weight_files = {os.path.realpath(folder / name) for name in set(safetensors_weight_map(folder).values())}
        if any(os.stat(name).st_dev != os.stat(ancestor).st_dev for name in weight_files):
            raise UsageError("--link", f"{output_dir} is on another file system than the weights of {model_path}", "drop --link or choose a folder on the same file system")
    return target


def _new_file_mode(path: Path) -> None:
    """The mode the umask gives a new file (safetensors writes 0600 whatever the umask)."""
    os.chmod(path, 0o666 & ~current_umask())


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A temp folder beside ``target``, renamed to it when the body succeeds and removed otherwise."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        os.chmod(staging, 0o777 & ~current_umask())
    except OSError as error:
        raise UsageError("--output_dir", f"cannot create a folder beside {target} ({error.strerror})", "choose a writable place") from None
    try:
        yield staging
        if target.is_dir():
            target.rmdir()  # empty, as checked before the model loaded
        os.rename(staging, target)
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as its own error
        shutil.rmtree(staging, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else " ".join(str(error).split())
        raise UsageError("--output_dir", f"cannot write {target} ({reason}); nothing was left behind", "free space or choose another folder") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _stored_names(model: PreTrainedModel, edits: Sequence[FoldEdit], folder: Path, weight_map: dict[str, str]) -> dict[str, str] | None:
    """Parameter name -> stored tensor name for every edited parameter, or None when one has no exact match.

    A stored tensor counts only when it equals the loaded parameter (cast to the model's dtype), so a
    renamed, transposed or converted tensor is never edited by position.
    """
    prefix = f"{model.base_model_prefix}."
    names: dict[str, str] = {}
    for name in dict.fromkeys(edit.parameter for edit in edits):
        parameter = model.get_parameter(name).detach().cpu()
        for key in dict.fromkeys((name, name.removeprefix(prefix))):
            if key not in weight_map:
                continue
            with safe_open(str(folder / weight_map[key]), "pt") as handle:
                stored = handle.get_tensor(key)
            if stored.shape == parameter.shape and stored.is_floating_point() and torch.equal(stored.to(parameter.dtype), parameter):
                names[name] = key
                break
        else:
            logger.warning("%s has no stored tensor equal to the loaded %s; saving the whole folded model instead", folder, name)
            return None
    return names


def _transfer(source: Path, destination: Path, link: bool) -> None:
    if link:
        os.link(os.path.realpath(source), destination)
    else:
        shutil.copyfile(source, destination)


def _rewrite_shards(folder: Path, weight_map: dict[str, str], stored: dict[str, str], edits: Sequence[FoldEdit], staging: Path, link: bool, lesion_config: dict) -> dict[str, Any]:
    edits_by_shard: dict[str, list[tuple[str, FoldEdit]]] = {}
    for edit in edits:
        key = stored[edit.parameter]
        edits_by_shard.setdefault(weight_map[key], []).append((key, edit))
    for shard, shard_edits in edits_by_shard.items():
        with safe_open(str(folder / shard), "pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(folder / shard)
        for key, edit in shard_edits:
            tensors[key].index_fill_(edit.dim, torch.tensor(edit.indices), edit.value)
        save_file(tensors, staging / shard, metadata=metadata)
        _new_file_mode(staging / shard)
    shards = set(weight_map.values())
    transferred, skipped = [], []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in WRITTEN or name in edits_by_shard:
            continue
        if name.startswith(".") or not path.is_file() or (name.endswith(OTHER_WEIGHTS) and name not in shards):
            skipped.append(name)
            continue
        _transfer(path, staging / name, link)
        transferred.append(name)
    config = json.loads((folder / "config.json").read_text())
    write_text(staging / "config.json", json.dumps({**config, "lesion": lesion_config}, indent=2) + "\n", "--output_dir")
    if skipped:
        logger.info("Not exported from %s (folders, hidden files, weights in other formats): %s", folder, ", ".join(skipped))
    return {
        "mode": "rewrite_shards",
        "rewritten": sorted(edits_by_shard),
        "linked" if link else "copied": transferred,
        "skipped": skipped,
    }


def write_lesioned_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    model_path: str,
    channels: Iterable[Channel],
    edits: Sequence[FoldEdit],
    staging: Path,
    *,
    link: bool,
    lesion_config: dict,
) -> dict[str, Any]:
    """Write the model with ``edits`` applied into ``staging``; returns which files were rewritten, copied or linked.

    ``lesion_config`` goes into config.json under ``lesion``, so the lesioned folder has its own
    model fingerprint. When the weights are saved whole, the loaded model is folded for good.
    """
    folder = local_checkpoint(model_path)
    if folder is not None:
        weight_map = safetensors_weight_map(folder)
        stored = _stored_names(model, edits, folder, weight_map)
        if stored is not None:
            return _rewrite_shards(folder, weight_map, stored, edits, staging, link, lesion_config)
    apply_folds(model, channels, flag="--neuron_file", fix=EXPORT_FIX)
    model.config.lesion = lesion_config
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for path in staging.iterdir():
        _new_file_mode(path)
    return {"mode": "save_pretrained", "dtype": str(model.dtype).removeprefix("torch."), "written": sorted(path.name for path in staging.iterdir())}


def _number(value: float | None) -> str:
    return f"{value:.4g}" if value is not None and math.isfinite(value) else "overflow"


def model_card(lesion: dict[str, Any], output_dir: Path, max_rows: int = 20) -> str:
    """README.md of the exported folder: what was removed, its measured effect, how to run it."""
    channels = lesion["channels"]
    before, after = lesion["perplexity"]["before"], lesion["perplexity"]["after"]
    rows = "\n".join(f"| `{channel['layer_name']}` | {channel['hidden_idx']} |" for channel in channels[:max_rows])
    more = f"\n\n... and {len(channels) - max_rows} more; every channel and edited slice is listed in `lesion.json`." if len(channels) > max_rows else ""
    check = lesion["fold_check"]
    return f"""---
tags:
- lesioned
- critical-neurons
---

# {output_dir.name}

`{lesion['model']['path']}` ({lesion['model']['model_type']}) with {len(channels)} output channel(s) zero-ablated in
the weights: each channel is exactly zero at every position, as the hook-based masking of the
critical-neuron toolkit ("The Achilles' Heel of LLMs", arXiv 2510.10238) makes it. The folder is a
standard Hugging Face checkpoint; it needs no extra code. The channels come from `{lesion['neuron_file']}`
({lesion['neuron_file_kind']}, {lesion['num_records']} record(s)).

## What was removed

| module | channel |
|---|---|
{rows}{more}

Linear/Conv1D outputs are zero rows (and bias entries), norm outputs zero scale entries (-1 for
Gemma's `1 + weight` norms), MLP activation outputs zero input columns of the projection after them.

## Effect

| | perplexity | log10 |
|---|---|---|
| source | {_number(before['perplexity'])} | {before['log10_perplexity']:.4f} |
| lesioned | {_number(after['perplexity'])} | {after['log10_perplexity']:.4f} |

On the test text in `lesion.json` ({before['total_tokens']} predicted tokens): {after['log10_perplexity'] - before['log10_perplexity']:+.2f} orders of
magnitude. Fold check against the hook-masked source model on {check['probe_tokens']} tokens ({check['dtype']}):
max |logit difference| {check['max_abs_diff']:.3g}, tolerance {check['tolerance']:.3g}.

## Run it

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{output_dir}")
tokenizer = AutoTokenizer.from_pretrained("{output_dir}")
```

lm-evaluation-harness:

```bash
lm_eval --model hf --model_args pretrained={output_dir} --tasks wikitext,hellaswag --batch_size 8
```

vLLM:

```bash
vllm serve {output_dir}
```

```python
from vllm import LLM
llm = LLM(model="{output_dir}")
```

`lesion.json` holds the source model's identity, every channel and edited parameter slice, the fold
check and the perplexities; `config.json` carries a `lesion` entry, so this folder's model
fingerprint differs from the source's.
"""
