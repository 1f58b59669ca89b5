"""Masks as weights: fold "output channel j is zero at every position" into the parameters.

A folded model runs with no hooks (full speed in generation) and can be saved as a plain Hugging Face
folder that lm-eval or vLLM load without this package. Each site type has one exact fold:

- Linear / GPT-2 Conv1D: the output row (Conv1D stores (in, out): the column) and its bias entry are
  zero, so the output channel is exactly 0 whatever follows (this covers Phi-3's fused
  ``gate_up_proj`` and ``qkv_proj`` too: the hook zeroes the same fused output the zero row does).
- A norm with an elementwise scale: the entry that makes the scale factor 0, found by running the
  module on a random input with trial scales (0 for ``w * x`` and LayerNorm, whose bias entry is
  zeroed too; -1 for Gemma's ``x * (1 + w)``), never assumed from the class name.
- An MLP activation: its output only reaches the projection after it (``down_proj(act(gate) * up)``,
  ``c_proj(act(c_fc(x)))``), so zeroing that projection's input column removes the channel exactly.

Anything else (attention modules returning tuples, rotary embeddings, quantised weights, unknown
modules) is refused by name, and so is any edit of a parameter shared with another module (tied
embeddings): folding it would change that module too, which the hook never does.

:func:`masking` applies a set of channels either way (``--mask_mode``: hook, fold, or auto: fold when
every channel folds), for the evaluators and the random baseline alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.func import functional_call
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from critical_neurons.errors import UsageError
from critical_neurons.model.loading import input_device
from critical_neurons.model.masking import NeuronMasker, validate_channels
from critical_neurons.outputs.records import Channel, channels_by_site

logger = logging.getLogger(__name__)

MASK_MODE_FLAG = "--mask_mode"
MASK_MODE_FIX = "use --mask_mode hook"

# The paper's example text (a review of Simon & Garfunkel's Bookends): the fold check's probe, the export's
# default text for perplexity before and after, and the quick start's input.
BOOKENDS_TEXT = (
    "Later reviews were more positive. In just over 29 minutes, Bookends is stunning in its vision of a "
    "bewildered America in search of itself, said AllMusic writer Thom Jurek, who gave it five stars out of "
    "five. Pitchfork Media's Stephen M. Deusner called Bookends the moment in which the duo were settling "
    "into themselves, losing their folk revival pretensions and emphasizing quirky production techniques to "
    "match their soaring vocals. The A.V. Club called it the group's most musically and conceptually daring album."
)

# Per-model facts: the attribute name of an MLP activation -> the sibling projection that consumes its
# output. Llama, Qwen2, Mistral, Gemma 1-3: down_proj(act_fn(gate_proj(x)) * up_proj(x));
# Phi-3: down_proj(up * activation_fn(gate)); GPT-2: c_proj(act(c_fc(x))).
ACTIVATION_CONSUMERS = {"act_fn": "down_proj", "activation_fn": "down_proj", "act": "c_proj"}

# Fold check tolerance on logits, relative to the largest |logit| (at least 1): fold and hook are
# different computations, so they agree to the dtype's rounding, not bit for bit.
FOLD_TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


@dataclass(frozen=True)
class FoldEdit:
    """One site's share of a fold: entries ``indices`` along ``dim`` of ``parameter`` become ``value``."""

    site: str
    parameter: str
    dim: int
    indices: tuple[int, ...]
    value: float

    def to_dict(self) -> dict:
        return {**asdict(self), "indices": list(self.indices)}


def _refuse(site: str, reason: str, flag: str, fix: str) -> UsageError:
    return UsageError(flag, f"{site} cannot be folded into the weights ({reason})", fix)


def _check_weight(site: str, owner: str, module: nn.Module, flag: str, fix: str) -> None:
    """Only a plain floating-point weight in memory can be edited entry by entry."""
    weight = module.weight
    if not weight.is_floating_point():
        raise _refuse(site, f"{owner}.weight is {weight.dtype}, a quantised format", flag, fix)
    if weight.device.type == "meta":
        raise _refuse(site, f"{owner}.weight is offloaded (meta device)", flag, fix)


def _projection_edits(site: str, module: nn.Module, indices: tuple[int, ...], *, output: bool, owner: str, flag: str, fix: str) -> list[FoldEdit]:
    """Zero output channels (row and bias; Conv1D: column and bias) or input channels (column; Conv1D: row)."""
    _check_weight(site, owner, module, flag, fix)
    conv = isinstance(module, Conv1D)  # weight (in, out)
    width = module.weight.shape[1 if conv == output else 0]
    if max(indices) >= width:
        raise UsageError("--neuron_file", f"channel {max(indices)} is out of range for {site} ({width} channels)", "use a neuron file made for this model")
    weight_dim = (1 if conv else 0) if output else (0 if conv else 1)
    edits = [FoldEdit(site, f"{owner}.weight", weight_dim, indices, 0.0)]
    if output and getattr(module, "bias", None) is not None:
        edits.append(FoldEdit(site, f"{owner}.bias", 0, indices, 0.0))
    return edits


def _norm_zero_value(module: nn.Module) -> float | None:
    """The scale entry that zeroes a norm's output channel (0 for ``w * x``, -1 for ``x * (1 + w)``), or None.

    Tried on a random input with every entry set (bias entries zero): the form is checked, not assumed.
    """
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    if weight is None or weight.dim() != 1 or set(params) - {"weight", "bias"}:
        return None
    bias = params.get("bias")
    if bias is not None and bias.shape != weight.shape:
        return None
    probe = torch.randn(2, 3, weight.shape[0], generator=torch.Generator().manual_seed(0)).to(weight.device, weight.dtype)
    for value in (0.0, -1.0):
        trial = {"weight": torch.full_like(weight, value)}
        if bias is not None:
            trial["bias"] = torch.zeros_like(bias)
        try:
            with torch.no_grad():
                output = functional_call(module, trial, (probe,))
        except Exception:  # a module that is not a norm can fail on this input in any way
            return None
        if isinstance(output, torch.Tensor) and output.shape == probe.shape and not output.any():
            return value
    return None


def _site_edits(model: PreTrainedModel, site: str, indices: tuple[int, ...], flag: str, fix: str) -> list[FoldEdit]:
    module = model.get_submodule(site)
    if isinstance(module, (nn.Linear, Conv1D)):
        return _projection_edits(site, module, indices, output=True, owner=site, flag=flag, fix=fix)
    if next(module.children(), None) is not None:
        raise _refuse(site, f"it is a {type(module).__name__} holding other modules, not one projection, norm or activation", flag, fix)
    parent_name, _, attribute = site.rpartition(".")
    consumer_attribute = ACTIVATION_CONSUMERS.get(attribute)
    if consumer_attribute is not None and next(module.parameters(), None) is None:
        consumer_name = f"{parent_name}.{consumer_attribute}"
        consumer = getattr(model.get_submodule(parent_name), consumer_attribute, None)
        if not isinstance(consumer, (nn.Linear, Conv1D)):
            raise _refuse(site, f"its parent has no Linear or Conv1D {consumer_attribute} consuming its output", flag, fix)
        return _projection_edits(site, consumer, indices, output=False, owner=consumer_name, flag=flag, fix=fix)
    if isinstance(getattr(module, "weight", None), nn.Parameter):
        _check_weight(site, site, module, flag, fix)
        value = _norm_zero_value(module)
        if value is None:
            raise _refuse(site, f"{type(module).__name__} is not a norm whose scale can zero a channel", flag, fix)
        edits = [FoldEdit(site, f"{site}.weight", 0, indices, value)]
        if getattr(module, "bias", None) is not None:
            edits.append(FoldEdit(site, f"{site}.bias", 0, indices, 0.0))
        return edits
    raise _refuse(site, f"{type(module).__name__} is not a Linear/Conv1D projection, a norm or an MLP activation", flag, fix)


def _storage_key(parameter: torch.Tensor) -> tuple[str, int]:
    return str(parameter.device), parameter.untyped_storage().data_ptr()


def _refuse_shared(model: PreTrainedModel, edits: Sequence[FoldEdit], flag: str, fix: str) -> None:
    """Tied weights (one tensor under several names, or views of one storage) are never edited."""
    names_by_storage: dict[tuple[str, int], set[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if parameter.device.type != "meta":
            names_by_storage.setdefault(_storage_key(parameter), set()).add(name)
    for edit in edits:
        others = sorted(names_by_storage.get(_storage_key(model.get_parameter(edit.parameter)), set()) - {edit.parameter})
        if others:
            raise _refuse(edit.site, f"{edit.parameter} is tied to {others[0]}, so the edit would change that module too", flag, fix)


def plan_folds(model: PreTrainedModel, channels: Iterable[Channel], *, flag: str = MASK_MODE_FLAG, fix: str = MASK_MODE_FIX) -> list[FoldEdit]:
    """The parameter slices that fold ``channels`` into the weights, without touching any weight.

    Unknown modules and out-of-range channels are refused naming ``--neuron_file``; a site that cannot
    be folded exactly, or whose edit would reach a tied parameter, is refused naming ``flag``.
    """
    channels = list(channels)
    validate_channels(model, channels)
    edits = [
        edit
        for site, indices in channels_by_site(channels).items()
        for edit in _site_edits(model, site, tuple(sorted(set(indices))), flag, fix)
    ]
    _refuse_shared(model, edits, flag, fix)
    return edits


def can_fold(model: PreTrainedModel, channels: Iterable[Channel]) -> bool:
    """Whether every channel can be folded exactly (an evaluator can then pick fold mode by default)."""
    try:
        plan_folds(model, channels)
    except UsageError:
        return False
    return True


def _writes(model: PreTrainedModel, edits: Sequence[FoldEdit]) -> list[tuple[torch.Tensor, int, torch.Tensor, float]]:
    """One (parameter, dim, index on the parameter's device, value) per slice: one index_fill_ each."""
    merged: dict[tuple[str, int, float], set[int]] = {}
    for edit in edits:
        merged.setdefault((edit.parameter, edit.dim, edit.value), set()).update(edit.indices)
    writes = []
    for (name, dim, value), indices in merged.items():
        parameter = model.get_parameter(name)
        writes.append((parameter, dim, torch.tensor(sorted(indices), device=parameter.device), value))
    return writes


@contextmanager
def folded(model: PreTrainedModel, channels: Iterable[Channel], *, flag: str = MASK_MODE_FLAG, fix: str = MASK_MODE_FIX) -> Iterator[list[FoldEdit]]:
    """Zero ``channels`` through the weights for the ``with`` body, then restore them bit for bit.

    The original slices are saved on their parameters' devices before any write, so overlapping
    edits (an activation's column and a row of the same projection) restore exactly; the restore
    runs also after an exception. The body runs with autograd as the caller set it. A site that
    cannot be folded is refused (naming ``flag``) before any weight changes.
    """
    edits = plan_folds(model, channels, flag=flag, fix=fix)
    writes = _writes(model, edits)
    with torch.no_grad():
        saved = [parameter.index_select(dim, index) for parameter, dim, index, _ in writes]
    try:
        with torch.no_grad():
            for parameter, dim, index, value in writes:
                parameter.index_fill_(dim, index, value)
        yield edits
    finally:
        with torch.no_grad():
            for (parameter, dim, index, _), original in zip(writes, saved):
                parameter.index_copy_(dim, index, original)


def apply_folds(model: PreTrainedModel, channels: Iterable[Channel], *, flag: str = MASK_MODE_FLAG, fix: str = MASK_MODE_FIX) -> list[FoldEdit]:
    """Fold ``channels`` for good (for export): the model keeps the edits."""
    edits = plan_folds(model, channels, flag=flag, fix=fix)
    with torch.no_grad():
        for parameter, dim, index, value in _writes(model, edits):
            parameter.index_fill_(dim, index, value)
    return edits


@torch.no_grad()
def check_fold(
    model: PreTrainedModel,
    probe: torch.Tensor | PreTrainedTokenizerBase,
    channels: Iterable[Channel],
    *,
    text: str = BOOKENDS_TEXT,
    max_tokens: int = 128,
    flag: str = MASK_MODE_FLAG,
    fix: str = MASK_MODE_FIX,
) -> dict:
    """Logits of the folded model against the hooked one (:class:`NeuronMasker`) on a probe text.

    ``probe`` is (1, seq) token ids or a tokenizer for ``text``. Returns the record (max abs diff,
    tolerance, probe tokens, ...); a mismatch beyond the dtype's tolerance raises naming ``flag``.
    """
    channels = list(channels)
    input_ids = probe if isinstance(probe, torch.Tensor) else probe(text, return_tensors="pt").input_ids
    input_ids = input_ids[:, :max_tokens].to(input_device(model))
    with NeuronMasker(model, channels):
        hooked = model(input_ids=input_ids, use_cache=False).logits.float()
    with folded(model, channels, flag=flag, fix=fix):
        weights = model(input_ids=input_ids, use_cache=False).logits.float()
    finite = torch.isfinite(hooked) & torch.isfinite(weights)
    same_finite = torch.equal(torch.isfinite(hooked), torch.isfinite(weights))
    max_diff = float((hooked - weights)[finite].abs().max()) if finite.any() else 0.0
    scale = float(hooked[finite].abs().max()) if finite.any() else 0.0
    tolerance = FOLD_TOLERANCE.get(model.dtype, 1e-2) * max(1.0, scale)
    result = {
        "probe_tokens": int(input_ids.shape[1]),
        "dtype": str(model.dtype).removeprefix("torch."),
        "max_abs_diff": max_diff,
        "logit_scale": scale,
        "tolerance": tolerance,
        "top1_agreement": float((hooked.argmax(-1) == weights.argmax(-1)).float().mean()),
        "passed": same_finite and max_diff <= tolerance,
    }
    if not result["passed"]:
        raise UsageError(
            flag, f"the folded weights do not reproduce the hooked model: logits differ by {max_diff:.3g} (tolerance {tolerance:.3g}) on {result['probe_tokens']} probe tokens", fix
        )
    logger.info("Fold check passed: max |logit difference| %.3g <= %.3g on %d tokens", max_diff, tolerance, result["probe_tokens"])
    return result


MASK_MODES = ("auto", "hook", "fold")


def resolve_mask_mode(model: PreTrainedModel, channels: Sequence[Channel], requested: str = "auto") -> str:
    """``auto``: fold when every channel folds exactly, else hook; ``fold`` refuses an unfoldable site by name."""
    if requested not in MASK_MODES:
        raise UsageError(MASK_MODE_FLAG, f"must be one of {', '.join(MASK_MODES)}, got {requested!r}", "use auto, hook or fold")
    if requested == "fold":
        plan_folds(model, channels)
        return "fold"
    if requested == "auto":
        return "fold" if channels and can_fold(model, channels) else "hook"
    return "hook"


def masking(model: PreTrainedModel, channels: Sequence[Channel], mode: str = "hook") -> AbstractContextManager:
    """The channels zeroed for the ``with`` body: by forward hooks, or folded into the weights and restored after."""
    if not channels:
        return nullcontext()
    return folded(model, channels) if mode == "fold" else NeuronMasker(model, channels, validate=False)
