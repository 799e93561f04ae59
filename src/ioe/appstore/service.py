"""The app store on a node: publish manifests, install apps into communities, pay their
subscriptions, and run the apps of the communities this node belongs to.

**Developers** publish a manifest file (``ioe apps publish FILE``): the node reads it as untrusted
input, names its own agent as developer, signs it and lists it in the store (the core network's
``appstore`` zome). **Managers** install an app into a community they founded (``ioe apps
install APP --community ID``): the manifest's signature is checked, the capabilities it asks for
are granted in an installation signed by the manager keyset, and a subscription's first period is
paid to the developer at once; the manager's node pays each next period ahead while renewals
last (:mod:`ioe.appstore.subscription`). **Members** run it: every node looks every
:data:`RUN_POLL_S` at the installations of its communities (its memberships, or the communities
it founded) and starts an app network for each one that should run, under an app key of its own
with its community membership as membrane proof; an uninstalled or unpaid app is stopped and its
network left. A node also drops, from the app networks it runs, members whose community
membership has been revoked since they joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from ioe.appstore.host import AppStoreHost, RunningApp
from ioe.appstore.subscription import Standing, renewal_due, standing
from ioe.community.service import CommunityError, live_memberships
from ioe.crypto.derivation import OwnerAccount, app_agent_index
from ioe.crypto.keys import KeyPair
from ioe.dht.service import DnaNetwork
from ioe.dnas import APP_DNAS, app_dna
from ioe.encoding import Value
from ioe.errors import EncodingError, IoEError
from ioe.hashing import ActionHash, AgentPubKey, ExternalHash
from ioe.identity.service.keyset_signing import sign_with_keyset
from ioe.zomes.appnet.board import TOPIC_LINK, BoardPost, topic_anchor
from ioe.zomes.appnet.membrane import AppMembership, app_membership
from ioe.zomes.appstore.entries import (
    INSTALLATION_CONTEXT,
    INSTALLATION_VERSION,
    INSTALLED_LINK,
    MAX_SETTINGS,
    PAID_LINK,
    RELEASE_LINK,
    STORE_LINK,
    UNINSTALLED_LINK,
    AppInstallation,
    AppListing,
    AppManifest,
    Installation,
    ManifestFileError,
    PricingModel,
    SubscriptionPayment,
    app_anchor,
    checked_manifest,
    manifest_from_json,
    sign_manifest,
    store_anchor,
)
from ioe.zomes.community.entries import (
    MEMBER_OF_LINK,
    CommunityEntry,
    MembershipEntry,
)

log = logging.getLogger(__name__)

APPSTORE_ZOME = "appstore"
RUN_POLL_S = 2.0
"""How often a node looks at its communities' installations (and pays what is due)."""
MEMBERSHIP_CHECK_S = 10.0
"""How often the members of a running app network are checked against revocations."""
RENEWALS_SETTING = "appstore.renewals"
"""Per installation (action hash text): how many more periods the manager's node pays (-1: until
uninstalled)."""
MAX_LISTED = 500
MAX_BOARD = 500


class AppStoreError(IoEError):
    """The store could not do what was asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A manifest as the store holds it."""

    action: ActionHash
    manifest: AppManifest

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "app": m.app,
            "name": m.name,
            "version": m.app_version,
            "developer": m.developer.to_text(),
            "description": m.description,
            "pricing": {
                "model": str(m.pricing.model),
                "fee_mc": m.pricing.fee_mc,
                "period_s": m.pricing.period_s,
            },
            "capabilities": [{"point": c.point, "access": str(c.access)} for c in m.capabilities],
            "dna": m.dna,
            "runs_here": m.dna in APP_DNAS,
            "manifest": m.id.to_text(),
            "listing": self.action.to_text(),
            "published_us": m.published_us,
        }


@dataclass(frozen=True, slots=True)
class Installed:
    """An installation as the network holds it, with what ended or paid for it."""

    action: ActionHash
    author: AgentPubKey
    installation: Installation
    charter: bytes
    manifest: AppManifest
    paid: tuple[int, ...]
    uninstalled: bool

    def standing(self, now_us: int) -> Standing:
        return standing(
            self.manifest.pricing,
            self.installation.installed_us,
            self.paid,
            now_us,
            uninstalled=self.uninstalled,
        )

    def to_json(self, now_us: int) -> dict[str, Any]:
        s = self.standing(now_us)
        return {
            "installation": self.action.to_text(),
            "community": self.installation.community.to_text(),
            "app": self.manifest.app,
            "name": self.manifest.name,
            "version": self.manifest.app_version,
            "developer": self.manifest.developer.to_text(),
            "pricing": str(self.manifest.pricing.model),
            "fee_mc": self.manifest.pricing.fee_mc,
            "period_s": self.manifest.pricing.period_s,
            "granted": [
                {"point": c.point, "access": str(c.access)} for c in self.installation.granted
            ],
            "settings": json.loads(self.installation.settings or "{}"),
            "installed_us": self.installation.installed_us,
            "state": str(s.state),
            "paid_periods": s.paid_periods,
            "paid_until_us": s.paid_until_us,
            "premium": s.premium,
        }


def settings_text(settings: Value | str | None) -> str:
    """An installation's settings as canonical JSON text (an object); ``AppStoreError`` if not."""
    if settings is None or settings == "":
        return "{}"
    try:
        value = json.loads(settings) if isinstance(settings, str) else settings
    except json.JSONDecodeError as exc:
        raise AppStoreError(f"--settings is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AppStoreError("an app's settings are a JSON object")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_SETTINGS:
        raise AppStoreError(f"an app's settings are at most {MAX_SETTINGS} characters")
    return text


class AppStore:
    """The node's app store (see the module docstring)."""

    def __init__(self, host: AppStoreHost) -> None:
        self.host = host
        self.running: dict[ExternalHash, RunningApp] = {}
        """The installed apps running here, by installation id."""
        self._networks: dict[ExternalHash, DnaNetwork] = {}
        self._with_code: set[ExternalHash] = set()
        """Installations whose app code runs here (not only their network)."""
        self._task: asyncio.Task[None] | None = None
        self._checked_at: dict[ExternalHash, float] = {}
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_running(), name="app store")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for installation in list(self.running):
            with contextlib.suppress(Exception):
                await self._stop(installation)

    # ------------------------------------------------------------------------ the store

    def _now(self) -> int:
        return self.host.conductor.clock()

    def _dht(self) -> DnaNetwork:
        return self.host.dht_for(self.host.core_cell())

    async def publish(self, text: str) -> Listing:
        """List the manifest file ``text`` as this node's agent (its developer)."""
        cell = self.host.core_cell()
        try:
            unsigned = manifest_from_json(text, cell.agent, self._now())
        except ManifestFileError as exc:
            raise AppStoreError(f"the manifest: {exc}") from None
        manifest = sign_manifest(unsigned, cell.keys)
        action = self.host.call(cell, APPSTORE_ZOME, "publish", {"manifest": manifest.to_bytes()})
        assert isinstance(action, ActionHash)
        return Listing(action, manifest)

    async def _listings(self, base: ExternalHash, link: str) -> list[Listing]:
        dht = self._dht()
        cell = self.host.core_cell()
        found = []
        for item in (await dht.get_links(base, link))[:MAX_LISTED]:
            if not isinstance(item.target, ActionHash):
                continue
            record = await dht.get_record(item.target)
            entry = None if record is None else cell.entry_value(record)
            if not isinstance(entry, AppListing) or record is None:
                continue
            manifest = checked_manifest(entry.manifest)
            if isinstance(manifest, AppManifest) and record.action.author == manifest.developer:
                found.append(Listing(item.target, manifest))
        return found

    async def listings(self) -> list[Listing]:
        """The newest listing of every app in the store (by publication time)."""
        newest: dict[tuple[str, AgentPubKey], Listing] = {}
        for listing in await self._listings(store_anchor(), STORE_LINK):
            key = (listing.manifest.app, listing.manifest.developer)
            known = newest.get(key)
            if known is None or listing.manifest.published_us > known.manifest.published_us:
                newest[key] = listing
        return sorted(newest.values(), key=lambda item: (item.manifest.app, item.manifest.name))

    async def listing(self, app: str, developer: str | None = None) -> Listing:
        """The newest listing of ``app`` (by ``developer`` when several publish that id)."""
        found = await self._listings(app_anchor(app), RELEASE_LINK)
        if developer:
            found = [item for item in found if item.manifest.developer.to_text() == developer]
        if not found:
            raise AppStoreError(f"no app {app[:40]!r} in the store (yet)")
        developers = {item.manifest.developer for item in found}
        if len(developers) > 1:
            names = ", ".join(sorted(d.to_text() for d in developers))
            raise AppStoreError(f"several developers publish {app!r}; say which: {names}")
        return max(found, key=lambda item: item.manifest.published_us)

    # ------------------------------------------------------------------------ installations

    async def install(
        self,
        community: str,
        app: str,
        *,
        settings: Value | str | None = None,
        developer: str | None = None,
        periods: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Enrol a community founded here into ``app``: the newest listing's manifest is
        checked, its capabilities granted in an installation signed by the manager keyset, and
        a subscription's first period paid. ``periods``: how many periods this node pays in all
        (None: until uninstalled)."""
        if not isinstance(self.host.conductor.account, OwnerAccount):
            raise AppStoreError("apps are installed from the community manager's node")
        if periods is not None and periods < 1:
            raise AppStoreError("--periods is at least 1")
        try:
            own = self.host.communities.show(community)
        except CommunityError as exc:
            raise AppStoreError(str(exc)) from None
        listing = await self.listing(app, developer)
        manifest = listing.manifest
        if manifest.dna not in APP_DNAS:
            raise AppStoreError(
                f"{app!r} runs DNA {manifest.dna!r}, which this release does not run"
            )
        for item in await self.installations_of(community):
            if item.manifest.app == app and not item.uninstalled and item.author == self._me():
                raise AppStoreError(f"{app!r} is already installed in this community")
        unsigned = Installation(
            INSTALLATION_VERSION,
            own.charter.id,
            manifest.app,
            manifest.id,
            manifest.capabilities,
            settings_text(settings),
            self._now(),
        )
        signatures = await sign_with_keyset(
            self.host,
            INSTALLATION_CONTEXT,
            unsigned.message(),
            keyset=own.charter.manager,
            what=f"install {manifest.name!r} into {own.charter.name!r}",
            timeout_s=timeout_s,
        )
        installation = Installation(
            unsigned.version,
            unsigned.community,
            unsigned.app,
            unsigned.manifest,
            unsigned.granted,
            unsigned.settings,
            unsigned.installed_us,
            signatures,
        )
        payload = {
            "installation": installation.to_bytes(),
            "charter": own.charter.to_bytes(),
            "listing_at": listing.action,
        }
        action = self.host.call(self.host.core_cell(), APPSTORE_ZOME, "install", payload)
        assert isinstance(action, ActionHash)
        self._set_renewals(action, -1 if periods is None else periods)
        installed = Installed(
            action,
            self._me(),
            installation,
            own.charter.to_bytes(),
            manifest,
            (),
            uninstalled=False,
        )
        out = installed.to_json(self._now())
        if manifest.pricing.model is not PricingModel.FREE and periods != 0:
            try:
                paid = await self._pay(installed, 0)
                out = {**installed_with(installed, 0).to_json(self._now()), "payment": paid}
            except IoEError as exc:
                out["payment_error"] = str(exc)
        return out

    def _me(self) -> AgentPubKey:
        return self.host.core_cell().agent

    def _set_renewals(self, action: ActionHash, remaining: int) -> None:
        db = self.host.conductor.db
        stored = db.get_setting(RENEWALS_SETTING)
        kept: dict[str, Value] = dict(stored) if isinstance(stored, dict) else {}
        kept[action.to_text()] = remaining
        db.put_setting(RENEWALS_SETTING, kept)

    def _renewals(self, action: ActionHash) -> int:
        stored = self.host.conductor.db.get_setting(RENEWALS_SETTING)
        found = stored.get(action.to_text()) if isinstance(stored, dict) else None
        return found if isinstance(found, int) else -1

    async def _pay(self, installed: Installed, period: int) -> dict[str, Any]:
        """Pay ``period`` of a subscription to its developer and record it."""
        manifest = installed.manifest
        payment = await self.host.wallet.pay(
            manifest.developer,
            manifest.pricing.fee_mc,
            kind="fee",
            memo=f"{manifest.app} subscription, period {period}",
        )
        payload = {
            "installation_at": installed.action,
            "transfer_at": payment.action_hash,
            "period": period,
        }
        self.host.call(self.host.core_cell(), APPSTORE_ZOME, "record_payment", payload)
        remaining = self._renewals(installed.action)
        if remaining > 0:
            self._set_renewals(installed.action, remaining - 1)
        return {
            "period": period,
            "amount_mc": manifest.pricing.fee_mc,
            "transfer": payment.action_hash.to_text(),
        }

    async def uninstall(self, community: str, app: str, reason: str = "") -> ActionHash:
        """End this manager's installation of ``app`` in ``community``: members stop it."""
        for item in await self.installations_of(community):
            if item.manifest.app == app and not item.uninstalled and item.author == self._me():
                payload = {"installation_at": item.action, "reason": reason}
                action = self.host.call(self.host.core_cell(), APPSTORE_ZOME, "uninstall", payload)
                assert isinstance(action, ActionHash)
                self._set_renewals(item.action, 0)
                return action
        raise AppStoreError(f"{app[:40]!r} is not installed in {community[:60]!r} by this node")

    async def installations_of(self, community: str) -> list[Installed]:
        """Every installation into ``community`` the network holds (ended ones included)."""
        try:
            community_id = ExternalHash.from_text(community)
        except ValueError as exc:
            raise AppStoreError(f"not a community id: {exc}") from None
        dht = self._dht()
        cell = self.host.core_cell()
        found = []
        for link in (await dht.get_links(community_id, INSTALLED_LINK))[:MAX_LISTED]:
            if not isinstance(link.target, ActionHash):
                continue
            record = await dht.get_record(link.target)
            entry = None if record is None else cell.entry_value(record)
            if record is None or not isinstance(entry, AppInstallation):
                continue
            item = await self._installed(link.target, record.action.author, entry)
            if item is not None:
                found.append(item)
        return sorted(found, key=lambda i: i.installation.installed_us)

    async def _installed(
        self, action: ActionHash, author: AgentPubKey, entry: AppInstallation
    ) -> Installed | None:
        dht = self._dht()
        cell = self.host.core_cell()
        listing_record = await dht.get_record(entry.listing_at)
        listing = None if listing_record is None else cell.entry_value(listing_record)
        if not isinstance(listing, AppListing):
            return None
        manifest = checked_manifest(listing.manifest)
        try:
            installation = Installation.from_bytes(entry.installation)
        except EncodingError:
            return None
        if isinstance(manifest, str):
            return None
        uninstalled = bool(await dht.get_links(action, UNINSTALLED_LINK))
        paid = []
        for link in (await dht.get_links(action, PAID_LINK))[:MAX_LISTED]:
            if not isinstance(link.target, ActionHash):
                continue
            record = await dht.get_record(link.target)
            payment = None if record is None else cell.entry_value(record)
            mine = record is not None and record.action.author == author
            if isinstance(payment, SubscriptionPayment) and mine:
                paid.append(payment.period)
        return Installed(
            action, author, installation, entry.charter, manifest, tuple(sorted(paid)), uninstalled
        )

    async def subscriptions(self) -> list[Installed]:
        """The installations this node made, as the network holds them."""
        own = self.host.call(self.host.core_cell(), APPSTORE_ZOME, "installed", None)
        assert isinstance(own, list)
        communities = {installation.community.to_text() for _, installation in own}
        found: list[Installed] = []
        for community in sorted(communities):
            found.extend(
                i for i in await self.installations_of(community) if i.author == self._me()
            )
        return found

    # ------------------------------------------------------------------------ running apps

    async def _keep_running(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self.renew()
                    await self.reconcile()
            except (IoEError, OSError) as exc:
                log.info("app store round not finished: %s", exc)
            await asyncio.sleep(RUN_POLL_S)

    async def renew(self) -> list[tuple[str, int]]:
        """Pay the subscription periods now due on this manager's installations (while their
        renewals last). Returns (installation, period) for each payment made."""
        if not isinstance(self.host.conductor.account, OwnerAccount):
            return []
        done = []
        for item in await self.subscriptions():
            if item.uninstalled or self._renewals(item.action) == 0:
                continue
            due = renewal_due(
                item.manifest.pricing, item.installation.installed_us, item.paid, self._now()
            )
            if due is None:
                continue
            try:
                await self._pay(item, due)
            except IoEError as exc:
                log.warning("subscription %s not paid: %s", item.manifest.app, exc)
                continue
            done.append((item.action.to_text(), due))
        return done

    async def _my_communities(self) -> list[tuple[str, bytes, bytes]]:
        """(community id, membership bytes or b"" for its manager, charter bytes) of every
        community whose apps this node runs."""
        out: dict[str, tuple[str, bytes, bytes]] = {}
        if isinstance(self.host.conductor.account, OwnerAccount):
            for listed in self.host.communities.founded():
                community = listed.charter.id.to_text()
                out[community] = (community, b"", listed.charter.to_bytes())
        dht = self._dht()
        cell = self.host.core_cell()
        for action, membership in await live_memberships(self.host, self._me(), MEMBER_OF_LINK):
            community = membership.community.to_text()
            if community in out:
                continue
            record = await dht.get_record(action)
            entry = None if record is None else cell.entry_value(record)
            if not isinstance(entry, MembershipEntry):
                continue
            charter_record = await dht.get_record(entry.charter_at)
            charter = None if charter_record is None else cell.entry_value(charter_record)
            if isinstance(charter, CommunityEntry):
                out[community] = (community, entry.membership, charter.charter)
        return list(out.values())

    async def reconcile(self) -> None:
        """Start the apps that should run here and stop those that should not."""
        now = self._now()
        wanted: dict[ExternalHash, tuple[Installed, bytes, bytes]] = {}
        for community, membership, charter in await self._my_communities():
            for item in await self.installations_of(community):
                if item.standing(now).running and item.manifest.dna in APP_DNAS:
                    wanted[item.installation.id] = (item, membership, charter)
        for installation in [i for i in self.running if i not in wanted]:
            await self._stop(installation)
        for installation, (item, membership, charter) in wanted.items():
            if installation not in self.running:
                await self._start(item, membership, charter)
        await self._drop_revoked()

    async def _start(self, item: Installed, membership: bytes, charter: bytes) -> None:
        core = self.host.core_cell()
        member_proof = self.host.conductor.membrane_proof(core)
        if member_proof is None:
            return
        installation_id = item.installation.id
        dna = app_dna(
            item.manifest.dna,
            item.installation.community,
            installation_id,
            item.manifest.app,
            core.dna,
        )

        def proof_for(app_keys: KeyPair) -> bytes:
            doc = app_membership(
                core.keys,
                app_keys.agent,
                installation_id,
                charter=charter,
                membership=membership,
                member_proof=member_proof,
            )
            return doc.to_bytes()

        cell, network = await self.host.join_app_network(
            dna, app_agent_index(bytes(installation_id)), proof_for
        )
        running = RunningApp(item.action, item.installation, item.manifest, cell)
        self.running[installation_id] = running
        self._networks[installation_id] = network
        self.host.signals.publish(
            {"type": "app_started", "app": item.manifest.app, "installation": item.action.to_text()}
        )
        if await self.host.run_app(running):
            self._with_code.add(installation_id)

    async def _stop(self, installation: ExternalHash) -> None:
        running = self.running.pop(installation)
        self._networks.pop(installation, None)
        self._with_code.discard(installation)
        try:
            await self.host.stop_app(running)
        finally:
            await self.host.leave_app_network(running.dna_hash)
        self.host.signals.publish(
            {
                "type": "app_stopped",
                "app": running.manifest.app,
                "installation": running.installation_at.to_text(),
            }
        )

    async def _drop_revoked(self) -> None:
        """Leave out of each running app network the members whose community membership is
        no longer live (checked every :data:`MEMBERSHIP_CHECK_S` per network)."""
        loop = asyncio.get_running_loop()
        for installation, network in self._networks.items():
            if loop.time() - self._checked_at.get(installation, -1e9) < MEMBERSHIP_CHECK_S:
                continue
            self._checked_at[installation] = loop.time()
            community = self.running[installation].installation.community
            for agent, info in network.members().items():
                if info.membrane_proof is None or agent == self.running[installation].cell.agent:
                    continue
                try:
                    doc = AppMembership.from_bytes(info.membrane_proof)
                except EncodingError:
                    continue
                if not doc.membership:
                    continue  # the manager: its charter does not lapse
                live = await live_memberships(self.host, doc.member, MEMBER_OF_LINK)
                if not any(m.community == community for _, m in live):
                    log.info("app member %s left its community: dropped", agent.short())
                    network.excluded.add(agent)

    async def board(self, app: str, topic: str) -> list[dict[str, Any]]:
        """The notes posted under ``topic`` in the network of ``app`` as it runs here (newest
        last): what the app's members share, which nobody outside the community can read."""
        found = [r for i, r in self.running.items() if r.manifest.app == app]
        if not found:
            raise AppStoreError(f"{app[:40]!r} is not running on this node")
        running = found[0]
        network = self._networks[running.installation.id]
        posts = []
        for link in (await network.get_links(topic_anchor(topic), TOPIC_LINK))[:MAX_BOARD]:
            if not isinstance(link.target, ActionHash):
                continue
            record = await network.get_record(link.target)
            post = None if record is None else running.cell.entry_value(record)
            if isinstance(post, BoardPost) and record is not None:
                posts.append(
                    {
                        "author": record.action.author.to_text(),
                        "topic": post.topic,
                        "body": json.loads(post.body),
                        "posted_us": post.posted_us,
                    }
                )
        return sorted(posts, key=lambda p: p["posted_us"])

    def running_json(self) -> list[dict[str, Any]]:
        return [
            {
                "app": r.manifest.app,
                "installation": r.installation_at.to_text(),
                "community": r.installation.community.to_text(),
                "app_agent": r.cell.agent.to_text(),
                "dna": r.dna_hash.to_text(),
                "members": len(self._networks[i].members()) if i in self._networks else 0,
                "code": i in self._with_code,
            }
            for i, r in self.running.items()
        ]


def installed_with(item: Installed, period: int) -> Installed:
    """``item`` with ``period`` paid (what the network will hold once the payment is in)."""
    return Installed(
        item.action,
        item.author,
        item.installation,
        item.charter,
        item.manifest,
        tuple(sorted({*item.paid, period})),
        item.uninstalled,
    )
