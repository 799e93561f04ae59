"""The DHT workflows of one DNA's network on one node: membership, publishing with receipts,
authority validation, gets and gossip (:class:`~ioe.dht.service.DnaNetwork`)."""
