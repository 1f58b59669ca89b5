"""Evaluating a model with critical neurons masked: the level runner, generation, data and benchmark tasks."""
