"""The OpenADR 2.0b VEN against a real openleadr VTN on loopback (plain HTTP, no signing:
openleadr only authenticates VENs over TLS), and the pure event → signal conversion."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import openleadr  # the dev extra installs it: a missing one fails here, loudly
import pytest

from ioe.drivers.openadr_ven import (
    DemandResponseSignal,
    OpenAdrVen,
    SignalKind,
    SignalStream,
    signals_from_event,
)

pytestmark = [
    pytest.mark.anyio,
    # openleadr stores itself in its aiohttp app under a string key
    pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey:UserWarning"),
]

DEADLINE_S = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Vtn:
    server: Any
    url: str
    opts: list[tuple[str, str, str]] = field(default_factory=list)

    def on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts.append((ven_id, event_id, opt_type))

    async def opt_of(self, event_id: str, count: int = 1) -> str:
        for _ in range(int(DEADLINE_S / 0.02)):
            found = [opt for _, e, opt in self.opts if e == event_id]
            if len(found) >= count:
                return found[-1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"the VEN never answered event {event_id}")


REGISTERED: dict[str, str] = {}


def register(payload: dict[str, Any]) -> tuple[str, str]:
    ven_id = f"ven-{payload['ven_name']}"
    REGISTERED[ven_id] = f"reg-{payload['ven_name']}"
    return ven_id, REGISTERED[ven_id]


def ven_lookup(ven_id: str) -> dict[str, str] | None:
    if ven_id not in REGISTERED:
        return None
    return {"ven_id": ven_id, "ven_name": ven_id[4:], "registration_id": REGISTERED[ven_id]}


async def start_vtn(port: int = 0) -> Vtn:
    server = openleadr.OpenADRServer(
        vtn_id="IOE_TEST_VTN",
        http_host="127.0.0.1",
        http_port=port,
        ven_lookup=ven_lookup,
        requested_poll_freq=timedelta(seconds=1),
    )
    server.add_handler("on_create_party_registration", register)
    await server.run()
    port = server.app_runner.addresses[0][1]
    return Vtn(server, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b")


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    running = await start_vtn()
    yield running
    await running.server.stop()


async def next_signal(stream: SignalStream) -> DemandResponseSignal:
    return await asyncio.wait_for(anext(stream), DEADLINE_S)


def at_second(when: datetime) -> datetime:
    return when.replace(microsecond=0)


async def test_simple_and_price_events_become_signals(vtn: Vtn) -> None:
    now = at_second(datetime.now(UTC))
    vtn.server.add_event(  # waiting before the VEN registers: it comes with the first sync
        ven_id="ven-ioe",
        signal_name="SIMPLE",
        signal_type="level",
        intervals=[{"dtstart": now + timedelta(minutes=5), "duration": timedelta(minutes=15),
                    "signal_payload": 2}],
        event_id="shed-1",
        callback=vtn.on_opt,
    )  # fmt: skip
    ven = OpenAdrVen(vtn.url, "ioe", poll_interval_s=0.05)
    stream = ven.signals()
    async with ven:
        simple = await next_signal(stream)
        assert ven.registered
        assert ven.ven_id == "ven-ioe"
        assert simple == DemandResponseSignal(
            kind=SignalKind.SIMPLE,
            event_id="shed-1",
            modification_number=0,
            start=now + timedelta(minutes=5),
            duration=timedelta(minutes=15),
            interval=0,
            level=2,
            market_context="oadr://unknown.context",
        )
        assert not simple.active_at(now)
        assert simple.active_at(now + timedelta(minutes=10))
        assert await vtn.opt_of("shed-1") == "optIn"

        vtn.server.add_event(  # added while the VEN polls
            ven_id="ven-ioe",
            signal_name="ELECTRICITY_PRICE",
            signal_type="price",
            intervals=[
                {"dtstart": now, "duration": timedelta(minutes=30), "signal_payload": 0.25},
                {"dtstart": now + timedelta(minutes=30), "duration": timedelta(minutes=30),
                 "signal_payload": 0.31},
            ],
            event_id="tariff-1",
            callback=vtn.on_opt,
        )  # fmt: skip
        first, second = await next_signal(stream), await next_signal(stream)
        assert (first.kind, first.price, first.price_type) == (SignalKind.PRICE, 0.25, "price")
        assert (first.start, first.end) == (now, now + timedelta(minutes=30))
        assert (second.interval, second.price, second.start) == (1, 0.31, first.end)
        assert first.event_id == second.event_id == "tariff-1"
        assert await vtn.opt_of("tariff-1") == "optIn"
    with pytest.raises(StopAsyncIteration):
        await next_signal(stream)  # closing the VEN ends the stream


async def test_the_opt_policy_answers_the_vtn_and_updates_arrive(vtn: Vtn) -> None:
    now = at_second(datetime.now(UTC))
    received: list[DemandResponseSignal] = []
    got = asyncio.Event()

    async def collect(signal: DemandResponseSignal) -> None:
        received.append(signal)
        got.set()

    ven = OpenAdrVen(
        vtn.url,
        "picky",
        poll_interval_s=0.05,
        opt_in=lambda signals: all(s.level != 3 for s in signals),
    )
    ven.subscribe(collect)
    async with ven:
        for event_id, level in (("mild", 1), ("severe", 3)):
            vtn.server.add_event(
                ven_id="ven-picky",
                signal_name="SIMPLE",
                signal_type="level",
                intervals=[{"dtstart": now, "duration": timedelta(hours=1),
                            "signal_payload": level}],
                event_id=event_id,
                callback=vtn.on_opt,
            )  # fmt: skip
        assert await vtn.opt_of("mild") == "optIn"
        assert await vtn.opt_of("severe") == "optOut"
        assert {(s.event_id, s.opted_in) for s in received} == {("mild", True), ("severe", False)}

        got.clear()
        vtn.server.cancel_event("ven-picky", "mild")
        await asyncio.wait_for(got.wait(), DEADLINE_S)
        update = received[-1]
        assert (update.event_id, update.modification_number, update.cancelled) == ("mild", 1, True)
        assert not update.active_at(now + timedelta(minutes=1))


async def test_the_ven_waits_for_an_absent_vtn_and_registers_when_it_appears() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
    async with OpenAdrVen(url, "patient", poll_interval_s=0.05, retry_interval_s=0.05) as ven:
        await asyncio.sleep(0.3)
        assert not ven.registered
        late = await start_vtn(port)
        try:
            for _ in range(int(DEADLINE_S / 0.02)):
                if ven.registered:
                    break
                await asyncio.sleep(0.02)
            assert ven.registered
            assert ven.ven_id == "ven-patient"
        finally:
            await late.server.stop()


def test_importing_the_module_does_not_import_openleadr() -> None:
    code = "import sys, ioe.drivers.openadr_ven; print('openleadr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_without_the_extra_starting_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "openleadr", None)
    with pytest.raises(ImportError, match=r"ioe\[openadr\]"):
        await OpenAdrVen("http://127.0.0.1:1/x", "nobody").start()


# --- the pure conversion ------------------------------------------------------------------------

T0 = datetime(2024, 7, 1, 16, 0, tzinfo=UTC)


def event(*signals: dict[str, Any], status: str = "far", **descriptor: Any) -> dict[str, Any]:
    return {
        "event_descriptor": {
            "event_id": "ev",
            "modification_number": 3,
            "event_status": status,
            **descriptor,
        },
        "active_period": {"dtstart": T0, "duration": timedelta(hours=2)},
        "event_signals": list(signals),
        "response_required": "always",
    }


def intervals(*payloads: object, minutes: int = 60) -> list[dict[str, Any]]:
    return [
        {"uid": n, "duration": timedelta(minutes=minutes), "signal_payload": p}
        for n, p in enumerate(payloads)
    ]


def test_interval_starts_follow_from_the_active_period() -> None:
    found = signals_from_event(
        event(
            {
                "signal_name": "ELECTRICITY_PRICE",
                "signal_type": "priceRelative",
                "intervals": intervals(-0.05, 0.1),
                "measurement": {"name": "currency", "unit": "EUR"},
            },
            priority=1,
            test_event=True,
        )
    )
    assert found.problems == ()
    assert [(s.start, s.price, s.price_type, s.unit) for s in found.signals] == [
        (T0, -0.05, "priceRelative", "EUR"),
        (T0 + timedelta(hours=1), 0.1, "priceRelative", "EUR"),
    ]
    assert all(s.priority == 1 and s.test_event for s in found.signals)


def test_bad_values_are_problems_and_other_signals_are_ignored() -> None:
    found = signals_from_event(
        event(
            {"signal_name": "SIMPLE", "signal_type": "level", "intervals": intervals(1, 7, 2.5, 3)},
            {"signal_name": "ELECTRICITY_PRICE", "signal_type": "price",
             "intervals": intervals("cheap", float("nan"), 0.2)},
            {"signal_name": "ELECTRICITY_PRICE", "signal_type": "setpoint",
             "intervals": intervals(1)},
            {"signal_name": "LOAD_DISPATCH", "signal_type": "delta", "intervals": intervals(-5)},
            status="cancelled",
        )
    )  # fmt: skip
    assert [(s.kind, s.level, s.price) for s in found.signals] == [
        (SignalKind.SIMPLE, 1, None),
        (SignalKind.SIMPLE, 3, None),
        (SignalKind.PRICE, None, 0.2),
    ]
    assert all(s.cancelled and s.modification_number == 3 for s in found.signals)
    assert len(found.problems) == 5


def test_an_event_without_a_descriptor_gives_no_signals() -> None:
    for garbage in ({}, {"event_descriptor": None}, {"event_descriptor": {"event_id": "x",
                    "modification_number": "first"}}):  # fmt: skip
        found = signals_from_event(garbage)
        assert found.signals == ()
        assert found.problems


def test_an_open_ended_signal_is_active_until_cancelled() -> None:
    signal = DemandResponseSignal(
        kind=SignalKind.SIMPLE,
        event_id="e",
        modification_number=0,
        start=T0,
        duration=timedelta(0),
        level=1,
    )
    assert signal.end is None
    assert signal.active_at(T0 + timedelta(days=30))
    assert not signal.active_at(T0 - timedelta(seconds=1))
