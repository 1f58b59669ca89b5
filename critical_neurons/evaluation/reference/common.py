"""What several of the authors' scorers share: their "meaningful response" gate and their empty-level values."""

from __future__ import annotations

import re

_LONG_RUN = re.compile(r"(.)\1{5,}", re.DOTALL)


def is_meaningful(response: str) -> bool:
    """The authors' "meaningful response" rule (IFEval, HumanEval, MATH-500, MGSM), exactly.

    After stripping: at least 3 characters, 2 of them alphanumeric; at least 3 distinct (lower-cased)
    characters when longer than 10; no run of 6 identical characters (newlines and spaces count);
    some whitespace-separated word with a letter. The corrected scorers report it as a diagnostic
    only: as a gate it rejected correct answers (8-space code indentation, ``******`` separators).
    """
    text = response.strip()
    if len(text) < 3 or sum(char.isalnum() for char in text) < 2:
        return False
    if len(text) > 10 and len(set(text.lower())) < 3:
        return False
    if _LONG_RUN.search(text):
        return False
    return any(any(char.isalpha() for char in word) for word in text.split())


def share(count: float, total: int) -> float:
    """count / total, and 0.0 when nothing is counted: the authors' value for an empty or all-meaningless level."""
    return count / total if total else 0.0
