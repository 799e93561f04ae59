"""The node's HTTP API as a fuzz target: hostile JSON bodies sent to every route that takes
one, on a real node serving on loopback.

An input is a route number (its first byte, modulo the routes) and a body (the rest), so byte
mutations move an input between routes as well as changing its body. The API's contract is to
answer a client's mistakes with a 4xx: a 5xx, a connection the server drops, or no answer in
time is a crash. The node is a scratch one (:mod:`ioe.check.scratch`) and nothing is kept: the
fuzzer may create grants, profiles or communities, rotate or revoke keys — whatever a hostile
local client could.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Sequence

from ioe.check import samples
from ioe.check.fuzz import Format, Target
from ioe.check.scratch import Route, api_routes
from ioe.node.runtime import Node

REQUEST_TIMEOUT_S = 30.0
BODY_METHODS = ("POST", "PUT", "DELETE")
_PARAM = re.compile(r"\{([^}]+)\}")


class ServerError(Exception):
    """The API answered a request with a 5xx, or not at all."""


def _fill(path: str, values: dict[str, str]) -> str:
    """A route's template with its parameters filled in with plausible values (so the body is
    what is judged, not a malformed path)."""
    return _PARAM.sub(lambda m: values.get(m.group(1), "x"), path)


class ApiTarget:
    """Sends each input to the API of ``node`` with its token, on one kept-alive connection."""

    def __init__(self, node: Node) -> None:
        agent = node.conductor.owner_cell.agent.to_text()
        values = {
            "agent": agent,
            "community": "uhCEk" + "A" * 48,
            "grant": "uhCkk" + "A" * 48,
            "request": "00" * 16,
            "id": "00" * 16,
            "app": "demand",
            "zome": "profile",
            "fn": "set_profile",
        }
        self.routes: list[Route] = [r for r in api_routes(node) if r.method in BODY_METHODS]
        self.paths = [_fill(r.path, values) for r in self.routes]
        host, port = node.api_url.removeprefix("http://").rsplit(":", 1)
        self._address = (host, int(port))
        self._headers = {
            "Authorization": f"Bearer {node.token}",
            "Content-Type": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None
        self.statuses: dict[int, int] = {}

    def samples(self, bodies: Sequence[bytes] = samples.API_BODIES) -> tuple[bytes, ...]:
        """Every route with every sample body."""
        return tuple(bytes([i]) + body for i in range(len(self.routes)) for body in bodies)

    def parse(self, data: bytes) -> None:
        if not self.routes:
            return
        index = data[0] % len(self.routes) if data else 0
        route, path = self.routes[index], self.paths[index]
        status = self.send(route.method, path, data[1:])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 500:
            raise ServerError(f"{route.method} {route.path} answered {status}")

    def send(self, method: str, path: str, body: bytes) -> int:
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more, fresh
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self._address, timeout=REQUEST_TIMEOUT_S)
            try:
                self._conn.request(method, path, body=body, headers=self._headers)
                response = self._conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2 or isinstance(exc, TimeoutError):
                    raise ServerError(f"{method} {path}: {type(exc).__name__} {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def target(self, weight: int = 1) -> Target:
        return Target(
            "http.api",
            self.parse,
            (),
            self.samples(),
            Format.JSON,
            max_input=8192,
            weight=weight,
            prefix=1,
            time_s=10.0,
        )
