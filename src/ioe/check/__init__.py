"""The reliability suite behind ``ioe check reliability`` (``docs/reliability.md``).

Each category tries to break the build in one way — SIGKILLs in the middle of writes, hostile
bytes fed to every parser of untrusted input, access it should refuse — and counts what it tried,
what survived and what was lost. :mod:`ioe.check.reliability` lists the categories and runs them;
:mod:`ioe.check.report` holds the figures and their table and JSON forms.
"""
