"""The files a run writes: their formats, run identity, atomic locked output files and records."""
