"""Internet of Energy: a peer-to-peer, agent-centric runtime for energy devices."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ioe")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
