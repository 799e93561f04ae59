"""Storage adapters for the engine's :class:`~ioe.engine.ports.ChainStore` port."""
