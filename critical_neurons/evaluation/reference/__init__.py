"""The authors' scorers, one module per benchmark, reproduced exactly (quirks included) for the ``reference`` blocks.

Each module exposes ``score(sample, response)`` (a sample's reference block) and ``aggregate(details)``
(a level's reference block, read from the per-sample details that hold those blocks). Goldens recorded
from the authors' own code (``tests/fixtures/authors/``) hold every module to their outputs.
"""
