"""Integrity of the identity zome (pure): the core DNA's membrane rule, no entry types yet."""

from __future__ import annotations

from ioe.engine.zome import IntegrityZome
from ioe.identity.membership import core_membrane

integrity = IntegrityZome(name="identity", version="1", membrane=core_membrane)
