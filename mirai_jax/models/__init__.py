"""Flax modules, free of files, flags and data; from_config.py builds the
ones a run config describes."""
