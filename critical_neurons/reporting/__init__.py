"""Reporting results: tables, figures and the console summary of a critical set."""
