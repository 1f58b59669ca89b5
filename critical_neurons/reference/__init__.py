"""The authors' scorers, one module per benchmark, reproduced output for output (the ``reference`` blocks)."""
