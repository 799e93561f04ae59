"""A small synchronous client of a running node's API, for the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ioe.errors import IoEError
from ioe.node.nodefile import NoRunningNode, read_node_file


class ApiError(IoEError):
    """The node answered with an error (``status``: its HTTP status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def call_api(
    data_dir: Path, method: str, path: str, body: object | None = None, *, timeout: float = 30.0
) -> Any:
    node = read_node_file(data_dir)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        node.api + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw: bytes = response.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ApiError(f"the node refused: {message}", exc.code) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise NoRunningNode(
            f"no node answers for {data_dir} at {node.api} (pid {node.pid}); is it running? ({exc})"
        ) from None
