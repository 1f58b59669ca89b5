"""Helpers several benchmarks share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

_LONG_RUN = re.compile(r"(.)\1{5,}")


def is_meaningful(response: str) -> bool:
    """The reference's "meaningful response" rule, reported as a diagnostic rate, never used as a gate.

    As a gate it rejected correct answers (8-space code indentation, ``******`` separators, ellipses).
    """
    text = response.strip()
    if len(text) < 3 or sum(char.isalnum() for char in text) < 2:
        return False
    if len(text) > 10 and len(set(text.lower())) < 3:
        return False
    if _LONG_RUN.search(text):
        return False
    return any(any(char.isalpha() for char in word) for word in text.split())


def mean(values: Iterable[float]) -> float | None:
    """Mean, or None for an empty collection (no ZeroDivisionError on an empty set)."""
    values = list(values)
    return sum(values) / len(values) if values else None


def rate(details: Sequence[dict[str, Any]], key: str) -> float | None:
    """Fraction of samples whose ``key`` is truthy."""
    return mean(float(bool(detail.get(key))) for detail in details)
