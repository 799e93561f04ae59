"""Benchmarks shipped with the project (``ioe bench ...``): each measures a ratio against the
machine's own limits or a reference run in the same process, and prints its figures as JSON."""
