"""Utility demand response: an IoE node as an OpenADR 2.0b VEN (with ``openleadr``).

:class:`OpenAdrVen` registers with the utility's VTN, polls it, answers every event with optIn
(by default; see ``opt_in``) and turns the SIMPLE (level 0–3) and ELECTRICITY_PRICE signals in
the events into plain :class:`DemandResponseSignal` values, one per interval, delivered to
subscribers: ``async for signal in ven.signals()`` or ``ven.subscribe(callback)``. An update of an
event (a higher modification number, e.g. a cancellation) is delivered again, so an app keeps
the latest signal per ``(event_id, interval)``.

The conversion (:func:`signals_from_event`) is pure and separate from the polling. ``openleadr``
is an optional extra (``pip install ioe[openadr]``): it is imported only when a VEN starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

_log = logging.getLogger(__name__)


class SignalKind(StrEnum):
    SIMPLE = "simple"  # level 0 normal, 1 moderate, 2 high, 3 special (shed as much as you can)
    PRICE = "price"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandResponseSignal:
    """One interval of one event signal, as apps use it.

    ``level`` is set for SIMPLE, ``price`` (with ``price_type`` ``price``, ``priceRelative`` or
    ``priceMultiplier``, and the VTN's ``unit`` if it gave one, e.g. a currency) for
    ELECTRICITY_PRICE. A ``duration`` of zero means until further notice.
    """

    kind: SignalKind
    event_id: str
    modification_number: int
    start: datetime
    duration: timedelta
    interval: int = 0
    level: int | None = None
    price: float | None = None
    price_type: str = ""
    unit: str = ""
    market_context: str = ""
    priority: int = 0
    test_event: bool = False
    cancelled: bool = False
    opted_in: bool = True

    @property
    def end(self) -> datetime | None:
        return self.start + self.duration if self.duration > timedelta(0) else None

    def active_at(self, when: datetime) -> bool:
        end = self.end
        return not self.cancelled and self.start <= when and (end is None or when < end)


@dataclass(frozen=True, slots=True)
class EventSignals:
    """The signals found in one event, and what was wrong with the rest of it."""

    signals: tuple[DemandResponseSignal, ...]
    problems: tuple[str, ...] = ()


_PRICE_TYPES = ("price", "priceRelative", "priceMultiplier")


def signals_from_event(event: Mapping[str, Any]) -> EventSignals:
    """The SIMPLE and ELECTRICITY_PRICE signals of an event (as openleadr parses an ``oadrEvent``:
    snake_case keys, datetimes and timedeltas). Other signal names are skipped silently;
    values that break the rules of a signal are skipped and described in ``problems``."""
    problems: list[str] = []
    try:
        descriptor = event["event_descriptor"]
        event_id = str(descriptor["event_id"])
        modification = int(descriptor.get("modification_number", 0))
        period = event.get("active_period") or {}
        period_start = _utc(period.get("dtstart"))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return EventSignals((), (f"event without a usable descriptor: {err!r}",))
    common: dict[str, Any] = {
        "event_id": event_id,
        "modification_number": modification,
        "market_context": str(descriptor.get("market_context") or ""),
        "priority": _int(descriptor.get("priority"), 0),
        "test_event": descriptor.get("test_event") is True,
        "cancelled": descriptor.get("event_status") == "cancelled",
    }
    found: list[DemandResponseSignal] = []
    for signal in _as_list(event.get("event_signals"), "event_signals"):
        if not isinstance(signal, Mapping):
            problems.append(f"event {event_id}: a signal is not an object")
            continue
        name, signal_type = signal.get("signal_name"), signal.get("signal_type")
        if name == "SIMPLE":
            kind = SignalKind.SIMPLE
        elif name == "ELECTRICITY_PRICE" and signal_type in _PRICE_TYPES:
            kind = SignalKind.PRICE
        elif name == "ELECTRICITY_PRICE":
            problems.append(f"event {event_id}: price signal of type {signal_type!r}")
            continue
        else:
            continue
        measurement = signal.get("measurement")
        unit = measurement.get("unit") if isinstance(measurement, Mapping) else None
        start = period_start
        for number, interval in enumerate(_as_list(signal.get("intervals"), "interval")):
            where = f"event {event_id} {name} interval {number}"
            if not isinstance(interval, Mapping):
                problems.append(f"{where}: not an object")
                start = None
                continue
            start = _utc(interval.get("dtstart")) or start
            duration = interval.get("duration")
            if start is None or not isinstance(duration, timedelta):
                problems.append(f"{where}: no start or duration")
                start = None
                continue
            value = _payload(interval.get("signal_payload"))
            fields: dict[str, Any] = {
                **common,
                "kind": kind,
                "start": start,
                "duration": duration,
                "interval": _int(interval.get("uid"), number),
            }
            if kind is SignalKind.SIMPLE:
                if value is None or value not in (0, 1, 2, 3):
                    problems.append(f"{where}: level {interval.get('signal_payload')!r}")
                else:
                    found.append(DemandResponseSignal(**fields, level=int(value)))
            elif value is None:
                problems.append(f"{where}: price {interval.get('signal_payload')!r}")
            else:
                found.append(
                    DemandResponseSignal(
                        **fields, price=value, price_type=str(signal_type), unit=str(unit or "")
                    )
                )
            start = start + duration
    return EventSignals(tuple(found), tuple(problems))


def _as_list(value: object, inner: str) -> list[Any]:
    if isinstance(value, Mapping):
        value = value.get(inner, [value])
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _payload(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: object, default: int) -> int:
    return value if type(value) is int else default


def _openleadr() -> Any:
    try:
        import openleadr  # noqa: PLC0415 - an optional extra, imported only when used
    except ImportError as err:
        raise ImportError(
            "OpenADR needs the optional extra: pip install 'ioe[openadr]' (openleadr)"
        ) from err
    return openleadr


Subscriber = Callable[[DemandResponseSignal], Awaitable[None] | None]
OptPolicy = bool | Callable[[Sequence[DemandResponseSignal]], bool]
_END = object()


class SignalStream:
    """Signals from the moment it was made; ends when the VEN closes (or :meth:`close`)."""

    def __init__(self, ven: OpenAdrVen, maxsize: int) -> None:
        self._ven = ven
        self._queue: asyncio.Queue[DemandResponseSignal | object] = asyncio.Queue(maxsize)

    def __aiter__(self) -> AsyncIterator[DemandResponseSignal]:
        return self

    async def __anext__(self) -> DemandResponseSignal:
        item = await self._queue.get()
        if item is _END:
            self.close()
            raise StopAsyncIteration
        assert isinstance(item, DemandResponseSignal)
        return item

    def close(self) -> None:
        self._ven._streams.discard(self)

    def _put(self, item: DemandResponseSignal | object) -> None:
        if self._queue.full():
            dropped = self._queue.get_nowait()
            _log.warning("a demand-response subscriber is behind; dropped %s", dropped)
        self._queue.put_nowait(item)


class OpenAdrVen:
    """A VEN of ``vtn_url`` (e.g. ``https://vtn.example/OpenADR2/Simple/2.0b``). Use as an async
    context manager, or :meth:`start` and :meth:`close`.

    ``poll_interval_s`` overrides the poll frequency the VTN asks for. ``opt_in`` is the answer
    to events: a bool, or a function of the event's signals. Events with no SIMPLE or
    ELECTRICITY_PRICE signal are opted out of: this node cannot act on them. ``cert``, ``key``,
    ``passphrase``, ``ca_file`` and ``vtn_fingerprint`` are openleadr's TLS and signing options.
    """

    def __init__(
        self,
        vtn_url: str,
        ven_name: str,
        *,
        ven_id: str | None = None,
        poll_interval_s: float | None = None,
        opt_in: OptPolicy = True,
        retry_interval_s: float = 10.0,
        cert: str | None = None,
        key: str | None = None,
        passphrase: str | None = None,
        ca_file: str | None = None,
        vtn_fingerprint: str | None = None,
        queue_size: int = 256,
    ) -> None:
        self.vtn_url = vtn_url
        self.ven_name = ven_name
        self.ven_id = ven_id
        self.poll_interval_s = poll_interval_s
        self.opt_in = opt_in
        self.retry_interval_s = retry_interval_s
        self._tls = {
            "cert": cert,
            "key": key,
            "passphrase": passphrase,
            "ca_file": ca_file,
            "vtn_fingerprint": vtn_fingerprint,
        }
        self._queue_size = queue_size
        self._streams: set[SignalStream] = set()
        self._callbacks: list[Subscriber] = []
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self.registration_id: str | None = None

    async def __aenter__(self) -> OpenAdrVen:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def registered(self) -> bool:
        return self.registration_id is not None

    def signals(self) -> SignalStream:
        """An async iterator of the signals received from now on."""
        stream = SignalStream(self, self._queue_size)
        self._streams.add(stream)
        return stream

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(signal)`` (sync or async) for every signal; returns the unsubscribe."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def start(self) -> None:
        _openleadr()  # fail now, not in the background, when the extra is missing
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"openadr-ven-{self.ven_name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stream in list(self._streams):
            stream._put(_END)

    # --- the VEN's life: register, sync, poll; register again when the VTN forgets us ---------

    async def _run(self) -> None:
        while True:
            client = self._new_client()
            try:
                if await self._register(client):
                    await client.sync_events()
                    while client.registration_id is not None:
                        await asyncio.sleep(self._poll_interval(client))
                        await self._poll(client)
                    _log.warning("the VTN at %s dropped the registration", self.vtn_url)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("OpenADR VEN %s failed talking to %s", self.ven_name, self.vtn_url)
            finally:
                self.registration_id = None
                await self._stop_client(client)
            await asyncio.sleep(self.retry_interval_s)

    def _new_client(self) -> Any:
        client = _openleadr().OpenADRClient(
            ven_name=self.ven_name,
            vtn_url=self.vtn_url,
            ven_id=self.ven_id,
            show_fingerprint=False,
            **self._tls,
        )
        client.add_handler("on_event", self._on_event)
        client.add_handler("on_update_event", self._on_event)
        self._client = client
        return client

    async def _register(self, client: Any) -> bool:
        answer = await client.query_registration()
        if not answer or answer[0] is None:
            _log.warning("the VTN at %s does not answer", self.vtn_url)
            return False
        request_id = (answer[1].get("response") or {}).get("request_id")
        await client.create_party_registration(ven_id=client.ven_id, request_id=request_id)
        if client.registration_id is None:
            _log.warning("the VTN at %s did not register %s", self.vtn_url, self.ven_name)
            return False
        self.ven_id, self.registration_id = client.ven_id, client.registration_id
        _log.info("VEN %s registered with %s as %s", self.ven_name, self.vtn_url, self.ven_id)
        return True

    async def _poll(self, client: Any) -> None:
        try:
            await client._poll()  # openleadr dispatches what the VTN sends (events, re-register)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            _log.warning("polling %s failed: %r", self.vtn_url, err)

    def _poll_interval(self, client: Any) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        frequency = getattr(client, "poll_frequency", None)
        seconds = frequency.total_seconds() if isinstance(frequency, timedelta) else 10.0
        return min(max(seconds, 1.0), 86_400.0)

    @staticmethod
    async def _stop_client(client: Any) -> None:
        session = getattr(client, "client_session", None)
        if session is not None:
            await session.close()

    async def _on_event(self, event: Mapping[str, Any]) -> str:
        found = signals_from_event(event)
        for problem in found.problems:
            _log.warning("the VTN sent a bad demand-response signal: %s", problem)
        opted_in = bool(found.signals) and self._decide(found.signals)
        for signal in found.signals:
            await self._deliver(replace(signal, opted_in=opted_in))
        return "optIn" if opted_in else "optOut"

    def _decide(self, signals: Sequence[DemandResponseSignal]) -> bool:
        if isinstance(self.opt_in, bool):
            return self.opt_in
        try:
            return bool(self.opt_in(signals))
        except Exception:
            _log.exception("the opt-in policy failed; opting out")
            return False

    async def _deliver(self, signal: DemandResponseSignal) -> None:
        for stream in list(self._streams):
            stream._put(signal)
        for callback in list(self._callbacks):
            try:
                result = callback(signal)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log.exception("a demand-response subscriber failed on %s", signal)
