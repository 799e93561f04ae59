"""Simulations: many agents using the stack the way real nodes do (``ioe sim``).

A surface layer (DESIGN §2): it drives cells, nodes and node processes from above and nothing
below imports it.
"""
