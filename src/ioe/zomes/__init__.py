"""The IoE zomes: one folder each, with ``entries.py`` (types), ``validation.py`` (pure integrity
rules) and ``api.py`` (zome functions)."""
