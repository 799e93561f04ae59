"""Internet of Energy: a peer-to-peer, agent-centric runtime for energy devices."""

__version__ = "0.1.0"

__all__ = ["__version__"]
