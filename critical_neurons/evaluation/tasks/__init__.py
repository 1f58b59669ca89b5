"""Benchmark-specific parts (data, prompt, extraction, metric), one module per benchmark."""
