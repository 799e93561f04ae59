"""The wallet: payments, receipts and settlements of the energy currency between nodes, on the
currency zome of the node's core cell (``docs/currency.md``)."""
