"""Drivers of the authors' evaluators for scripts/compare_with_authors.py, one module per benchmark (interface in common.py)."""
