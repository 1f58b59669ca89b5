"""Neuron sites: which module outputs are recorded and can be masked.

Per-model facts live here only. The default rule is the reference's name rule (plus ``attn`` so
GPT-2's ``attn.c_attn``/``attn.c_proj`` count); the output-shape rule is applied when the model runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import torch
from torch import nn
from transformers import PreTrainedModel

from critical_neurons.errors import UsageError

logger = logging.getLogger(__name__)

SITE_KEYWORDS = ("mlp", "ffn", "feed_forward", "attention", "self_attn", "attn")
DEFAULT_SITE_PATTERN = "|".join(SITE_KEYWORDS)
_PASS_THROUGH = (nn.Dropout, nn.Identity)


def _is_site_module(module: nn.Module) -> bool:
    """Leaf or Linear/LayerNorm (the reference's rule); dropout/identity only repeat another output."""
    if isinstance(module, _PASS_THROUGH):
        return False
    return isinstance(module, (nn.Linear, nn.LayerNorm)) or next(module.children(), None) is None


def site_pattern(modules: str | None) -> re.Pattern[str]:
    """``None``: the default rule; ``REGEX``: only names matching it; ``+REGEX``: default plus REGEX."""
    if not modules:
        source = DEFAULT_SITE_PATTERN
    elif modules.startswith("+"):
        source = f"{DEFAULT_SITE_PATTERN}|{modules[1:]}"
    else:
        source = modules
    try:
        return re.compile(source)
    except re.error as error:
        raise UsageError("--modules", f"{modules!r} is not a valid regular expression ({error})", "fix the pattern") from None


def candidate_sites(model: PreTrainedModel, modules: str | None = None) -> list[str]:
    """Module names that may be sites, before the output-shape check (done by :class:`SiteRecorder`)."""
    pattern = site_pattern(modules)
    default = not modules
    names = [
        name
        for name, module in model.named_modules()
        if name and _is_site_module(module) and pattern.search(name.lower() if default else name)
    ]
    if not names:
        raise UsageError("--modules", f"no module of this model matches {pattern.pattern!r}", "check the names printed by model.named_modules()")
    return names


class SiteRecorder:
    """Forward hooks that hand every (batch, seq, channels) site output to ``on_output``.

    ``fired`` keeps the order in which sites ran in the first pass (the tie-break order of every
    ranking); outputs of any other shape are skipped with one log line per module.
    """

    def __init__(self, model: PreTrainedModel, names: list[str], on_output: Callable[[str, torch.Tensor], torch.Tensor | None]):
        self.model = model
        self.names = names
        self.on_output = on_output
        self.fired: list[str] = []
        self._seen: set[str] = set()
        self.skipped: dict[str, str] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output):
            if name in self.skipped:
                return None
            if not isinstance(output, torch.Tensor) or output.dim() != 3:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                self.skipped[name] = f"output {shape} is not (batch, seq, channels)"
                logger.info("Skipping site %s: output %s is not (batch, seq, channels)", name, shape)
                return None
            if name not in self._seen:
                self._seen.add(name)
                self.fired.append(name)
            return self.on_output(name, output)

        return hook

    def __enter__(self) -> SiteRecorder:
        modules = dict(self.model.named_modules())
        self._handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.names]
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def require_sites(fired: list[str]) -> None:
    """A ranking needs at least one site whose output had the (batch, seq, channels) shape."""
    if not fired:
        raise UsageError("--modules", "no selected module produced a (batch, seq, channels) output", "select other modules")


def base_forward(model: PreTrainedModel) -> Callable[..., object]:
    """The model without its LM head: site outputs are the same, and the vocab projection is skipped."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) and base is not model else model

