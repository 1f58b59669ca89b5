"""The paper's method (Stage 1 importance, ranking, Stage 2 identification) and its baselines."""
