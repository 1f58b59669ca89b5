"""Neuron records (ranked entries) and channels (distinct neurons)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple


class Channel(NamedTuple):
    """A distinct neuron: one output channel of one module, named as ``named_modules()`` prints it."""

    layer_name: str
    hidden_idx: int


@dataclass(frozen=True)
class NeuronRecord:
    """One ranked (module, position, channel) entry.

    The score sits under ``activation_diff`` in files whatever the method, as in the reference.
    Masking ignores ``seq_idx`` (the reference zeroes the whole channel at every position), so
    several records can name the same :class:`Channel`.
    """

    layer_name: str
    seq_idx: int
    hidden_idx: int
    score: float
    batch_idx: int = 0

    @property
    def channel(self) -> Channel:
        return Channel(self.layer_name, self.hidden_idx)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_name": self.layer_name,
            "batch_idx": self.batch_idx,
            "seq_idx": self.seq_idx,
            "hidden_idx": self.hidden_idx,
            "activation_diff": self.score,
        }

    @classmethod
    def from_dict(cls, entry: Any) -> NeuronRecord:
        """A record as files store it; ValueError saying what is wrong with a malformed one.

        Positions and channels must be JSON integers (a bool, float, string or non-finite value is
        refused); a null score is a non-finite one, kept as NaN.
        """
        if not isinstance(entry, dict):
            raise ValueError(f"a record must be an object, got {type(entry).__name__}")
        layer_name = entry.get("layer_name")
        if not isinstance(layer_name, str) or not layer_name:
            raise ValueError(f"layer_name must be a module name, got {layer_name!r}")
        score = entry.get("activation_diff", 0.0)
        if score is None:
            score = math.nan
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"activation_diff must be a number, got {score!r}")
        return cls(
            layer_name=layer_name,
            seq_idx=_index(entry.get("seq_idx", 0), "seq_idx"),
            hidden_idx=_index(entry.get("hidden_idx"), "hidden_idx"),
            score=float(score),
            batch_idx=_index(entry.get("batch_idx", 0), "batch_idx"),
        )


def _index(value: Any, key: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def distinct_channels(records: Iterable[NeuronRecord]) -> list[Channel]:
    """Channels in order of first appearance (duplicates from other positions dropped)."""
    return list(dict.fromkeys(record.channel for record in records))


def channels_by_site(channels: Iterable[Channel]) -> dict[str, list[int]]:
    """Group channels by module name, keeping first-appearance order."""
    grouped: dict[str, list[int]] = {}
    for layer_name, hidden_idx in channels:
        grouped.setdefault(layer_name, []).append(hidden_idx)
    return grouped
