"""The libp2p network passes the same contract as the in-memory one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from ioe.net.interface import Network
from ioe.net.p2p import P2PNetwork
from ioe.testing.network_contract import MakeNetworks, NetworkContract


class TestP2PNetwork(NetworkContract):
    @pytest.fixture
    def make_networks(self) -> MakeNetworks:
        @asynccontextmanager
        async def make(n: int) -> AsyncIterator[Sequence[Network]]:
            async with AsyncExitStack() as stack:
                yield [
                    await stack.enter_async_context(P2PNetwork(os.urandom(32))) for _ in range(n)
                ]

        return make
