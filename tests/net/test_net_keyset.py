"""An enterprise 2-of-3 keyset across real processes on loopback: three officers (``ioe init``
each, ``ioe node run``), the portfolio created on the first one's node, a device plugged in and
enrolled only once a second officer approves with ``ioe owner approve``; the device is then a
member on another officer's node with a certificate under the enterprise keyset, and revoking it
needs a second approval as well."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nodes import NodeProcess, env, init, members, wait_for

from ioe.conductor import KEYSTORE_FILE
from ioe.crypto.keystore import Unlock, read_keystore
from ioe.identity.device_account import DeviceAccount
from ioe.identity.pairing import normalise_code

pytestmark = pytest.mark.process


def ioe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioe", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=90,
        check=False,
    )


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def background(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ioe", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def finish(process: subprocess.Popen[str]) -> Any:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def pending_approval(data_dir: Path, kind: str) -> dict[str, Any] | None:
    items = last_json(ioe("owner", "approvals", "--data-dir", str(data_dir), "--json"))
    waiting = [i for i in items if i["state"] == "pending" and i["document"]["kind"] == kind]
    return waiting[0] if waiting else None


def test_two_of_three_officers_enroll_and_revoke_a_device(tmp_path: Path) -> None:
    dirs = {name: tmp_path / name for name in ("a", "b", "c")}
    device_dir = tmp_path / "device"
    a = NodeProcess(dirs["a"], init(dirs["a"])).start("--no-mdns")
    b = NodeProcess(dirs["b"], init(dirs["b"])).start("--no-mdns", "--bootstrap", a.addr)
    c = NodeProcess(dirs["c"], init(dirs["c"])).start("--no-mdns", "--bootstrap", a.addr)
    device: subprocess.Popen[str] | None = None
    try:
        keys = {
            name: last_json(ioe("owner", "keyset", "key", "--data-dir", str(d), "--json"))["key"]
            for name, d in dirs.items()
        }
        assert len(set(keys.values())) == 3
        wait_for(lambda: {b.owner, c.owner} <= members(a), timeout=60)
        signers = [arg for key in keys.values() for arg in ("--signer", key)]
        made = last_json(
            ioe("owner", "keyset", "create", "--data-dir", str(dirs["a"]), *signers,
                "--required", "2", "--json")
        )  # fmt: skip
        assert made["required"] == 2 and sorted(made["signers"]) == sorted(keys.values())
        assert made["revoker"] is None
        shown = last_json(ioe("owner", "keyset", "show", "--data-dir", str(dirs["a"]), "--json"))
        assert shown["id"] == made["id"] and shown["enterprise"] is True

        device = background(
            "device", "plug-in", "--data-dir", str(device_dir), "--type", "consumption",
            "--name", "Kettle", "--no-mdns", "--listen", "127.0.0.1:0", "--bootstrap", a.addr,
        )  # fmt: skip
        assert device.stdout is not None
        first = json.loads(device.stdout.readline())
        code = normalise_code((device_dir / "pairing-code").read_text())
        wait_for(
            lambda: "Kettle" in ioe("owner", "pending", "--data-dir", str(dirs["a"])).stdout,
            timeout=30,
        )
        enrolling = background(
            "owner", "enroll", "--data-dir", str(dirs["a"]), first["agent"], "--code", code,
            "--timeout", "90", "--json",
        )  # fmt: skip
        request = wait_for(
            lambda: pending_approval(dirs["b"], "enrollment certificate"), timeout=60
        )
        assert request["document"]["name"] == "Kettle"
        assert request["keyset"] == made["id"] and request["required"] == 2
        assert enrolling.poll() is None  # waiting: the portfolio's own signature is 1 of 2
        approved = last_json(
            ioe("owner", "approve", request["id"], "--data-dir", str(dirs["b"]), "--json")
        )
        assert approved == {"id": request["id"], "state": "approved"}
        agent = finish(enrolling)["agent"]
        assert json.loads(device.stdout.readline())["agent"] == agent

        # The device's certificate is under the enterprise keyset, and another officer's node
        # admits it as a member (its membrane rule checked the two signatures).
        secrets = read_keystore(
            device_dir / KEYSTORE_FILE, Unlock(key_file=device_dir / "device.key")
        )
        cert = DeviceAccount.from_secrets(secrets).certificate
        assert cert.keyset.id.to_text() == made["id"] and cert.keyset.current.sigs_required == 2
        wait_for(lambda: agent in members(c), timeout=60)

        # Revoking it needs a second officer too.
        revoking = background(
            "key", "revoke", "--data-dir", str(dirs["a"]), agent, "--reason", "stolen", "--json"
        )
        request = wait_for(lambda: pending_approval(dirs["c"], "key revocation"), timeout=40)
        assert request["document"]["revoked"] == agent and request["document"]["reason"] == "stolen"
        assert revoking.poll() is None
        last_json(ioe("owner", "approve", request["id"], "--data-dir", str(dirs["c"]), "--json"))
        revoked = finish(revoking)
        assert revoked["revoked"] == agent and revoked["keyset"] == made["id"]
        wait_for(lambda: agent not in members(a), timeout=60)
    finally:
        if device is not None:
            device.terminate()
            device.wait(timeout=30)
            for stream in (device.stdout, device.stderr):
                if stream is not None:
                    stream.close()
        for node in (c, b, a):
            node.stop()
