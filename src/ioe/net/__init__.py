"""The network: one small interface (:mod:`ioe.net.interface`) with two implementations —
libp2p over real sockets (:mod:`ioe.net.p2p`) and an in-memory twin with injectable delay, loss and
partitions (:mod:`ioe.net.memory`). Nothing above this package sees libp2p types."""
