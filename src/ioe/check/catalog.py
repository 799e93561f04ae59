"""The categories of the reliability suite by name, in table order, with one line each.

Kept apart from the runners (:mod:`ioe.check.reliability`), which import nodes, libp2p and every
parser: the command line lists the categories in ``--help`` without importing any of that.
"""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "crash": "SIGKILLs of chain writers and paying nodes mid-write, each restarted and checked",
    "hostile": "every parser of untrusted input fuzzed, oversized input dropped unparsed",
    "access": "what a node must refuse (API, files, calls, directory, p2p) it refuses",
}
