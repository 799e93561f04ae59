"""``DIR/node.json``: how the CLI finds the node running for a data directory.

Written atomically with mode 0600 when the node is ready (it holds the API token), removed on a
clean shutdown. A file left by a node that died is detected when its API does not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ioe.errors import IoEError

NODE_FILE = "node.json"


class NoRunningNode(IoEError):
    """No node is running for this data directory."""


@dataclass(frozen=True, slots=True)
class NodeFile:
    peer_id: str
    addrs: list[str]
    api: str
    token: str
    pid: int

    def to_json(self) -> dict[str, object]:
        return {
            "peer_id": self.peer_id,
            "addrs": self.addrs,
            "api": self.api,
            "token": self.token,
            "pid": self.pid,
        }


def write_node_file(data_dir: Path, info: NodeFile) -> None:
    path = data_dir / NODE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".node-", dir=data_dir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(info.to_json(), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_node_file(data_dir: Path, token: str) -> None:
    """Remove ``node.json`` if it is still ours (another node may have replaced it)."""
    with contextlib.suppress(OSError, NoRunningNode):
        if read_node_file(data_dir).token == token:
            (data_dir / NODE_FILE).unlink()


def read_node_file(data_dir: Path) -> NodeFile:
    path = data_dir / NODE_FILE
    try:
        raw = json.loads(path.read_text())
        return NodeFile(
            peer_id=str(raw["peer_id"]),
            addrs=[str(a) for a in raw["addrs"]],
            api=str(raw["api"]),
            token=str(raw["token"]),
            pid=int(raw["pid"]),
        )
    except FileNotFoundError:
        # a device's directory holds its key file; an owner's node is run with `node run`
        run = (
            "device run ... --data-dir"
            if (data_dir / "device.key").exists()
            else "node run --data-dir"
        )
        raise NoRunningNode(
            f"no node is running for {data_dir} (start one with `ioe {run} {data_dir}`)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoRunningNode(f"{path} is unreadable: {exc}") from exc
