"""The ``ioe`` command: a thin layer that parses arguments, calls the library and prints."""
