"""A running node: a conductor's cells on the network, with a local HTTP API."""
