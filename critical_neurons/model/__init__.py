"""The model's mechanics: loading, sites, masking, folding, export, residual-stream scans, perplexity."""
