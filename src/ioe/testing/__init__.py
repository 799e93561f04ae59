"""Test tools shipped with the library: contract suites and fakes (need pytest installed)."""
