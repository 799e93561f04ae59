"""An installed app reaches its device only as its installation granted: reads filtered to the
points granted *see*, writes only to points granted *control*, payments only with *trade*."""

from __future__ import annotations

import pytest

from ioe.appstore.granted import GrantedAppHost, NotGranted
from ioe.crypto.keys import KeyPair
from ioe.testing.app_host import MemoryAppHost
from ioe.zomes.appstore.entries import Capability
from ioe.zomes.community.entries import Access

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _hosts(granted: tuple[Capability, ...]) -> tuple[MemoryAppHost, GrantedAppHost, list[object]]:
    inner = MemoryAppHost(KeyPair(bytes([5]) * 32).agent)
    inner.device = {"power_w": 120.0, "switch": True, "energy_wh": 5.0}
    posts: list[object] = []

    async def post(topic: str, body: dict[str, object]) -> None:
        posts.append((topic, body))

    return inner, GrantedAppHost(inner, "demand", granted, post), posts


async def test_reads_writes_and_payments_follow_the_grant() -> None:
    inner, host, posts = _hosts(
        (Capability("power_w", Access.SEE), Capability("switch", Access.CONTROL))
    )
    assert await host.read_device() == {"power_w": 120.0}  # switch is controlled, not seen
    await host.write_device("switch", False)
    assert inner.writes == [("switch", False)]
    with pytest.raises(NotGranted, match="control of 'energy_wh'"):
        await host.write_device("energy_wh", 0.0)
    with pytest.raises(NotGranted, match="trade"):
        await host.pay(inner.agent, 10, kind="transfer")
    assert inner.payments == [] and inner.writes == [("switch", False)]
    await host.post_to_app("demand.alerts", {"alert": "feed down"})
    assert posts == [("demand.alerts", {"alert": "feed down"})]


async def test_the_wallet_balance_needs_trade_and_the_value_rules_are_the_network_s() -> None:
    inner, host, _ = _hosts((Capability("power_w", Access.SEE),))
    inner.balance = 651
    with pytest.raises(NotGranted, match="trade"):
        await host.balance_mc()
    assert host.value_rules() is inner.rules  # no secret: every member validates by them
    _, trader, _ = _hosts((Capability("power_w", Access.TRADE),))
    assert await trader.balance_mc() == 0
