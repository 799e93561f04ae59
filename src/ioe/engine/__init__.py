"""The agent engine: Holochain's patterns in pure Python.

Everything in this package is pure: no clock, no randomness, no sockets, no files, no database.
Time comes in as an argument (integer microseconds), storage through the :class:`ChainStore`
protocol (``ioe.store`` implements it with SQLite and in memory). A test checks that importing
this package loads nothing that does I/O.
"""
