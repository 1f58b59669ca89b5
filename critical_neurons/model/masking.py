"""The one masking helper: zero chosen output channels of chosen modules.

Every consumer (stage 2, evaluators, baselines) masks through :class:`NeuronMasker`. The hook is
one ``masked_fill`` per module per forward call, with the mask cached on the output's device, so it
works under ``device_map="auto"`` and costs the same for 1 or 10,000 masked records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from critical_neurons.errors import UsageError
from critical_neurons.outputs.records import Channel


def site_width(module: nn.Module) -> int | None:
    """Output channels of a module when its parameters tell (Linear, GPT-2 Conv1D, norms), else None."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if hasattr(module, "nf"):  # transformers' Conv1D
        return int(module.nf)
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 1:
        return weight.shape[0]
    return None


def validate_channels(model: PreTrainedModel, channels: Iterable[Channel], flag: str = "--neuron_file") -> None:
    """Every named module exists and every channel is inside its width (where the width is known)."""
    modules = dict(model.named_modules())
    for layer_name, hidden_idx in channels:
        module = modules.get(layer_name)
        if module is None:
            raise UsageError(flag, f"module {layer_name!r} is not in this model", "use a neuron file made for this model")
        width = site_width(module)
        if hidden_idx < 0 or (width is not None and hidden_idx >= width):
            raise UsageError(flag, f"channel {hidden_idx} is out of range for {layer_name} ({width} channels)", "use a neuron file made for this model")


class NeuronMasker:
    """Context manager that zeroes output channels at every position, prompt and generated tokens alike.

    ``NeuronMasker(model, channels)`` masks the same channels in every batch row;
    ``NeuronMasker.per_row(model, rows)`` gives batch row ``r`` its own set (stage 2 evaluates several
    prefixes in one forward pass this way). Hooks are removed on exit, also after an exception.
    """

    def __init__(self, model: PreTrainedModel, channels: Iterable[Channel], *, validate: bool = True):
        self._init(model, [list(channels)], per_row=False, validate=validate)

    @classmethod
    def per_row(cls, model: PreTrainedModel, rows: Sequence[Iterable[Channel]], *, validate: bool = True) -> NeuronMasker:
        masker = cls.__new__(cls)
        masker._init(model, [list(row) for row in rows], per_row=True, validate=validate)
        return masker

    def _init(self, model: PreTrainedModel, rows: list[list[Channel]], *, per_row: bool, validate: bool) -> None:
        if validate:
            validate_channels(model, {channel for row in rows for channel in row})
        self.model = model
        self.per_row_masks = per_row
        self.num_rows = len(rows)
        # site -> (row indices, channel indices): built once here, turned into a dense mask per device.
        coordinates: dict[str, tuple[list[int], list[int]]] = {}
        for row_index, row in enumerate(rows):
            for layer_name, hidden_idx in row:
                row_list, channel_list = coordinates.setdefault(layer_name, ([], []))
                row_list.append(row_index)
                channel_list.append(hidden_idx)
        self._coordinates = {name: (torch.tensor(r), torch.tensor(c)) for name, (r, c) in coordinates.items()}
        self._cache: dict[tuple[str, torch.device, int], torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def sites(self) -> list[str]:
        return list(self._coordinates)

    def _mask(self, name: str, output: torch.Tensor) -> torch.Tensor:
        """Boolean mask, True where the output is zeroed: (channels,) or (rows, 1, ..., channels)."""
        width = output.shape[-1]
        key = (name, output.device, width)
        mask = self._cache.get(key)
        if mask is None:
            row_index, channel_index = self._coordinates[name]
            if int(channel_index.max()) >= width:
                raise UsageError("--neuron_file", f"channel {int(channel_index.max())} is out of range for {name} ({width} channels)", "use a neuron file made for this model")
            if self.per_row_masks:
                dense = torch.zeros(self.num_rows, width, dtype=torch.bool)
                dense[row_index, channel_index] = True
                mask = dense.view(self.num_rows, *([1] * (output.dim() - 2)), width)
            else:
                mask = torch.zeros(width, dtype=torch.bool)
                mask[channel_index] = True
            mask = mask.to(output.device)
            self._cache[key] = mask
        return mask

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise UsageError("--neuron_file", f"module {name} returns {type(output).__name__}, not a tensor, so it cannot be masked", "use a neuron file of site modules")
            if self.per_row_masks and output.shape[0] != self.num_rows:
                raise ValueError(f"per-row masks for {self.num_rows} rows applied to a batch of {output.shape[0]} at {name}")
            return output.masked_fill(self._mask(name, output), 0)

        return hook

    def __enter__(self) -> NeuronMasker:
        modules = dict(self.model.named_modules())
        try:
            for name in self._coordinates:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __exit__(self, *exc_info) -> None:
        self.remove()
