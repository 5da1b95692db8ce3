"""The session directory in etcd (docs/pools.md §11): for sites that outgrow one subnet or a handful of
members, an existing consensus store holds the directory instead of the members themselves.

It speaks etcd's v3 JSON gateway (``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/lease/*``), etcd's documented
HTTP mapping of its gRPC API, served on every member's client URL, through httpx with a client
certificate (mutual TLS 1.3). Why not a gRPC client: python-etcd3 has been unmaintained since 2020 and
pins an old grpcio; the gateway needs no generated code and no gRPC stack in wrsrvd.

Keys (``POOL`` the pool's name):

- ``/wayray/pool/POOL/member/ID``: the :class:`Member`, as JSON, put with the member's lease;
- ``/wayray/pool/POOL/token/DIGEST``: the :class:`Entry`, as JSON, put with the claiming member's lease;
- ``/wayray/pool/POOL/key-check``: the pool token key's check record (:class:`KeyCheck`): a keyed
  digest of a fixed, versioned label under the pool's current key (and its previous one), made by
  the first member that found none. A member whose key does not make that digest uses the directory
  for nothing (:class:`KeyRefused`): its digests would match nobody's, and each badge of it would get
  a second session. Every claim is made under the condition that the record is still the one this
  member checked, so a rotation (a member with a newer key moves the record on) stops the members
  still on the old key from making new claims at that very revision.

Every write is a transaction etcd decides linearizably: a claim is ``If(create_revision == 0) Then(put)
Else(get)``; taking over an entry of our own or a placement made for us compares the entry's
``mod_revision`` as well (the entry we read is the one we replace, or we read again), and a release
compares the entry's lease (only our own entry goes). A member's entries are bound to its lease: a
member that stops renewing it (it died, or lost the network) loses them all when the TTL runs out.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from wayray.config.pooltypes import etcd_endpoints
from wayray.config.types import Invalid
from wayray.pool.directory import (
    Claim,
    DirectoryError,
    Entry,
    EntryState,
    Lease,
    LeaseExpired,
    Member,
    earlier,
    placed_on,
)
from wayray.pool.etcd_gateway import REQUEST_TIMEOUT, RETRY_WINDOW, Gateway
from wayray.pool.etcd_key import KEY_CHECK_VERSION, KeyCheck, maker, same
from wayray.pool.lan import LEASE_TTL, Peer

log = logging.getLogger("wayray.pool")

#: The "home" of every digest: etcd decides every claim (see :meth:`EtcdDirectory.home`).
HOME = "etcd"
#: Seconds between two log lines that say this member's key is refused (it checks every round).
REFUSAL_LOG_EVERY = 30.0


class EtcdConfigError(ValueError):
    """A ``directory = "etcd://…"`` value that names no usable endpoint."""


class KeyRefused(DirectoryError):
    """This member's pool token key is not the pool's (the key check record in etcd says so): it
    makes no claim and answers no lookup; the message says why and what the operator does."""


def parse_endpoints(url: str) -> tuple[str, ...]:
    """``etcd://host:2379,host2:2379`` → ``("https://host:2379", "https://host2:2379")`` (the
    configuration's own check: :func:`wayray.config.pooltypes.etcd_endpoints`)."""
    try:
        return etcd_endpoints(url)
    except Invalid as err:
        raise EtcdConfigError(str(err)) from None


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


def _range_end(prefix: str) -> str:
    """The end of the key range that holds every key starting with ``prefix`` (its last byte + 1)."""
    raw = prefix.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


def _get(obj: dict[str, Any], name: str, default: Any = None) -> Any:
    """A field of a gateway answer by its proto name or its JSON (lowerCamel) name."""
    if name in obj:
        return obj[name]
    head, *rest = name.split("_")
    return obj.get(head + "".join(w.title() for w in rest), default)


@dataclass(frozen=True)
class _Held:
    entry: Entry
    mod_revision: str


def _entry_of(kv: dict[str, Any]) -> _Held:
    try:
        obj = json.loads(_unb64(kv.get("value", "")))
        entry = Entry(
            str(obj["digest"]),
            str(obj["member"]),
            str(obj["session_id"]),
            EntryState(obj["state"]),
            float(obj.get("claimed_at", 0.0)),
            float(obj.get("since", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise DirectoryError(f"an entry in etcd is malformed: {err}") from None
    return _Held(entry, str(_get(kv, "mod_revision", "0")))


def _member_of(kv: dict[str, Any]) -> Member | None:
    try:
        obj = json.loads(_unb64(kv.get("value", "")))
        return Member(
            str(obj["id"]), str(obj["name"]), str(obj["host"]), int(obj["port"]), str(obj["fingerprint"])
        )
    except (ValueError, KeyError, TypeError) as err:
        log.warning("pool: a member record in etcd is malformed (%s); left out", err)
        return None


class EtcdDirectory:
    """The directory of pool ``pool`` in etcd, as member ``me`` uses it."""

    def __init__(
        self,
        me: Member,
        pool: str,
        endpoints: tuple[str, ...],
        context: ssl.SSLContext,
        *,
        key: KeyCheck,
        trusted: Callable[[Member], bool] = lambda member: True,
        timeout: float = REQUEST_TIMEOUT,
        retry_window: float = RETRY_WINDOW,
    ) -> None:
        if not endpoints:
            raise EtcdConfigError("an etcd directory needs at least one endpoint")
        self.me = me
        self.pool = pool
        self.endpoints = endpoints
        self._prefix = f"/wayray/pool/{pool}/"
        self._gateway = Gateway(
            endpoints, context, f"member {me.id}", timeout=timeout, retry_window=retry_window
        )
        self._trusted = trusted
        self._key = key
        self._check = key.digest(pool)
        #: What the key check record says of this member's key: None (not read yet), "ok", "behind"
        #: (it is the pool's previous key: this member keeps the entries of its sessions, no more),
        #: "foreign" (another key: nothing at all).
        self._key_state: str | None = None
        #: The key check record's mod_revision when this member last checked it: every claim requires
        #: it unchanged.
        self._key_revision = "0"
        #: Why this member's key is refused (for the kiosk's answer and the log), and when it was said.
        self.refusal: str | None = None
        self._said_refusal = -math.inf
        #: Members whose record carries this member's key check (id → True): placement's targets.
        self._proven: set[str] = set()
        self._own: Lease | None = None
        #: The members etcd listed at the last keep-alive round (id → member).
        self._members: dict[str, Member] = {}
        #: Called when this member's lease was lost and made again: its entries must be claimed again.
        self.on_lease_lost: Callable[[str], None] = lambda home: None

    # --- talking to etcd ---------------------------------------------------------------------------

    async def _call(self, path: str, body: dict[str, Any], *, patient: bool = True) -> dict[str, Any]:
        """POST ``body`` to etcd's gateway (:meth:`Gateway.call`: endpoints in turn, retried)."""
        return await self._gateway.call(path, body, patient=patient)

    def _token_key(self, digest: str) -> str:
        return f"{self._prefix}token/{digest}"

    def _member_key(self, member_id: str) -> str:
        return f"{self._prefix}member/{member_id}"

    @property
    def key_check_key(self) -> str:
        """Where the pool token key's check record is (for operators: ``etcdctl get`` it)."""
        return f"{self._prefix}key-check"

    # --- the pool token key's check (docs/pools.md §3.3) -------------------------------------------

    def _record(self, previous: str | None = None) -> str:
        return json.dumps({"version": KEY_CHECK_VERSION, "check": self._check, "previous": previous,
                           "member": self.me.id, "name": self.me.name, "host": self.me.host,
                           "since": time.time()})  # fmt: skip

    async def check_key(self, *, patient: bool = True) -> str:
        """Read the key check record (making it when there is none, moving it on when this member
        holds the key that replaced the pool's) and say what it makes of this member's key: "ok",
        "behind" or "foreign" (:attr:`refusal` says why, and it is logged, every 30 s at most)."""
        key = _b64(self.key_check_key)
        mine, previous = self._check, self._key.previous_digest(self.pool)
        for _ in range(8):
            kvs = await self._range(self.key_check_key, patient=patient)
            if not kvs:  # the first member of the pool (or of this version): it makes the record
                await self._make_key_check(key, previous)
                continue  # read it (its revision; or the record another member made first)
            kv = kvs[0]
            revision = str(_get(kv, "mod_revision", "0"))
            try:
                record = json.loads(_unb64(kv.get("value", "")))
                version = int(record["version"])
            except (ValueError, KeyError, TypeError) as err:
                return self._refuse(
                    "foreign",
                    revision,
                    f"the key check record in etcd ({self.key_check_key}) is "
                    f"malformed ({err}); delete it (etcdctl del {self.key_check_key}) and restart "
                    "a member that holds the pool's key file",
                )
            if version != KEY_CHECK_VERSION:
                return self._refuse(
                    "foreign",
                    revision,
                    f"the key check record in etcd ({self.key_check_key}) "
                    f"is of version {version}, made by a newer WayRay: upgrade this member",
                )
            made_by = maker(record)
            if same(record.get("check"), mine):
                return self._accept(revision)
            if same(record.get("check"), previous):
                # This member holds the key that replaced the pool's: the pool moves on to it, and
                # members still on the old key stop claiming from this revision on.
                await self._rotate_key_check(key, revision, record.get("check"))
                continue  # read it again (its revision; or another member's move)
            fix = (
                f"copy the pool's token key file from a member of pool {self.pool} to {self._key.file} "
                "and restart this member (docs/pools.md §3.3)"
            )
            if same(record.get("previous"), mine):
                return self._refuse(
                    "behind",
                    revision,
                    f"the pool token key in {self._key.file} is the pool's "
                    f"previous key: {made_by} rotated the pool to a newer one. The sessions this "
                    "member holds stay reachable, but it takes no new badge until it runs the "
                    "new key: copy the new key file to it (the old one to "
                    "peers.previous_token_key_file) and restart it (docs/pools.md §3.3)",
                )
            undo = (f"(if it is that member whose key file is wrong, stop it, delete the record with "
                    f"`etcdctl del {self.key_check_key}` and restart this member: its check makes the "
                    "record again)")  # fmt: skip
            return self._refuse(
                "foreign",
                revision,
                f"the pool token key in {self._key.file} is not the pool's: "
                f"the key check record in etcd ({self.key_check_key}, made by {made_by}) was made "
                f"with another key, so this member's badge digests would match no other "
                f"member's; {fix} {undo}",
            )
        raise DirectoryError("the pool token key's check record in etcd kept changing under us; try again")

    async def _make_key_check(self, key: str, previous: str | None) -> None:
        """Make the key check record unless one exists (create-if-absent)."""
        won, _ = await self._txn(
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": key, "value": _b64(self._record(previous))}}],
            [],
        )
        if won:
            log.info(
                "pool %s: made the pool token key's check record in etcd (%s) from %s: a member "
                "with another key file will refuse to use the directory",
                self.pool, self.key_check_key, self._key.file,
            )  # fmt: skip

    async def _rotate_key_check(self, key: str, revision: str, old_check: str | None) -> None:
        """Move the record on to this member's key (it holds the key that replaced ``old_check``),
        unless somebody changed the record since ``revision``."""
        moved, _ = await self._txn(
            [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": revision}],
            [{"request_put": {"key": key, "value": _b64(self._record(old_check))}}],
            [],
        )
        if moved:
            log.warning(
                "pool %s: the pool token key is rotated: this member holds the new key (%s) and "
                "moved the key check record in etcd on to it; members still on the previous key "
                "take no new badge until they are restarted with the new key file "
                "(docs/pools.md §3.3)",
                self.pool,
                self._key.file,
            )

    def _accept(self, revision: str) -> str:
        if self._key_state not in (None, "ok"):
            log.warning("pool %s: this member's pool token key (%s) is the pool's again: it uses the "
                        "session directory again", self.pool, self._key.file)  # fmt: skip
        self._key_state, self._key_revision, self.refusal = "ok", revision, None
        return "ok"

    def _refuse(self, state: str, revision: str, why: str) -> str:
        now = time.monotonic()
        if why != self.refusal or now - self._said_refusal >= REFUSAL_LOG_EVERY:
            log.error(
                "pool %s: this member refuses to use the session directory in etcd: %s", self.pool, why
            )
            self._said_refusal = now
        self._key_state, self._key_revision, self.refusal = state, revision, why
        return state

    async def _key_ok(self, *, session_entry: bool = False) -> None:
        """Raise :class:`KeyRefused` unless this member may do what it is about to: anything with the
        pool's key; with its previous key ("behind") only keeping entries of sessions it holds."""
        if self._key_state is None:
            await self.check_key()
        if self._key_state == "ok" or (self._key_state == "behind" and session_entry):
            return
        raise KeyRefused(f"this member's pool token key is not the pool's: {self.refusal}")

    def _guard(self) -> dict[str, Any]:
        """The compare every claim makes: the key check record is still the one this member checked."""
        key = _b64(self.key_check_key)
        return {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": self._key_revision}

    async def _claim_txn(
        self, compare: dict[str, Any], success: dict[str, Any], session_entry: bool
    ) -> tuple[bool, list[dict[str, Any]]]:
        """A claim's transaction, made only while the key check record is the one checked: when it
        changed (a rotation), it is checked again (:class:`KeyRefused` when this member is left behind)
        and the transaction made again."""
        key = _b64(self.key_check_key)
        for _ in range(8):
            await self._key_ok(session_entry=session_entry)
            won, responses = await self._txn(
                [compare, self._guard()], [success],
                [{"request_range": {"key": compare["key"]}}, {"request_range": {"key": key}}],
            )  # fmt: skip
            if won:
                return True, responses
            checked = _kvs_in(responses[1:])
            if checked and str(_get(checked[0], "mod_revision", "0")) == self._key_revision:
                return False, responses[:1]  # the entry's compare failed: the caller reads it
            await self.check_key()
        raise DirectoryError("the pool token key's check record in etcd kept changing under us; try again")

    def proven(self, member_id: str) -> bool:
        """Whether ``member_id``'s record in etcd says it holds the pool token key this member holds
        (placement sends new badges only there)."""
        return member_id in self._proven

    async def _txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]]
    ) -> tuple[bool, list[dict[str, Any]]]:
        answer = await self._call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure})
        return bool(answer.get("succeeded")), list(answer.get("responses") or [])

    async def _range(self, key: str, *, prefix: bool = False, patient: bool = True) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _range_end(key)
        answer = await self._call("/v3/kv/range", body, patient=patient)
        return list(answer.get("kvs") or [])

    # --- the Directory interface --------------------------------------------------------------------

    async def join(self, member: Member, ttl: float) -> Lease:
        if ttl <= 0:
            raise ValueError("a lease's ttl is positive")
        await self._key_ok(
            session_entry=True
        )  # a member left behind by a rotation keeps its sessions' entries
        answer = await self._call("/v3/lease/grant", {"TTL": max(1, math.ceil(ttl))})
        lease = Lease(str(answer.get("ID")), member.id, ttl)
        record = {**asdict(member), "key_check": self._check if member.id == self.me.id else None}
        await self._call(
            "/v3/kv/put",
            {"key": _b64(self._member_key(member.id)), "value": _b64(json.dumps(record)), "lease": lease.id},
        )
        if member.id == self.me.id:
            self._own = lease
        return lease

    async def keep_alive(self, lease: Lease) -> None:
        answer = await self._call("/v3/lease/keepalive", {"ID": lease.id}, patient=False)
        result = answer.get("result") or {}
        if int(_get(result, "TTL", 0) or 0) <= 0:
            raise LeaseExpired(f"the lease of member {lease.member} has expired")

    async def lookup(self, digest: str) -> Entry | None:
        await self._key_ok()
        kvs = await self._range(self._token_key(digest))
        return _entry_of(kvs[0]).entry if kvs else None

    def _lease(self, lease: Lease) -> Lease:
        """This member's lease as it is now (a keep-alive round may have joined again)."""
        if lease.member != self.me.id:
            return lease
        if self._own is None:
            raise DirectoryError("this member has not joined the directory yet (etcd did not answer)")
        return self._own

    async def claim(self, entry: Entry, lease: Lease) -> Claim:
        if entry.member != lease.member:
            raise DirectoryError("an entry is claimed under its own member's lease")
        kept = entry.state is EntryState.SESSION  # a session this member holds (not a new badge)
        await self._key_ok(session_entry=kept)
        lease = self._lease(lease)
        key = _b64(self._token_key(entry.digest))

        def put(value: Entry) -> dict[str, Any]:
            return {
                "request_put": {"key": key, "value": _b64(json.dumps(_entry_json(value))), "lease": lease.id}
            }

        fresh = replace(entry, claimed_at=time.time())
        won, responses = await self._claim_txn(
            {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}, put(fresh), kept
        )
        # An entry that is ours (a pending one turning into a session, or a claim repeated after an
        # answer was lost) or a placement for us is replaced only if it is still the one we read.
        # What this claim wrote itself (the same entry, to its claimed_at) is won: a request whose
        # answer was lost (an etcd too slow for the request's timeout, a connection cut) was made
        # all the same, and its repetition finds it. Taking that over again made another write
        # whose answer could be lost as well, and so on: "kept changing under us" under load.
        wrote, took_over = fresh, False
        for _ in range(8):
            if won:
                return Claim(True, fresh)
            held = self._held_in(responses)
            if held is None:  # it went between the two steps: claim afresh
                wrote, took_over = fresh, False
                won, responses = await self._claim_txn(
                    {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
                    put(fresh),
                    kept,
                )
                continue
            if held.entry == wrote:
                return Claim(True, wrote, taken_over=took_over)
            conflict = earlier(entry, held.entry)  # two sessions: the earlier takes the entry
            if held.entry.member != entry.member and placed_on(held.entry) != entry.member and not conflict:
                return Claim(False, held.entry)
            ours = replace(entry, claimed_at=fresh.claimed_at if conflict else held.entry.claimed_at)
            wrote, took_over = ours, held.entry.member != entry.member and not conflict
            took, responses = await self._claim_txn(
                {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": held.mod_revision},
                put(ours),
                kept,
            )
            if took:
                return Claim(True, ours, taken_over=took_over)
        raise DirectoryError(
            f"the claim of token digest {entry.digest[:8]} kept changing under us; try again"
        )

    @staticmethod
    def _held_in(responses: list[dict[str, Any]]) -> _Held | None:
        for response in responses:
            found = _get(response, "response_range")
            if isinstance(found, dict):
                kvs = found.get("kvs") or []
                return _entry_of(kvs[0]) if kvs else None
        return None

    async def release(self, digest: str, lease: Lease) -> None:
        lease = self._lease(lease)
        key = _b64(self._token_key(digest))
        await self._txn(
            [{"key": key, "target": "LEASE", "result": "EQUAL", "lease": lease.id}],
            [{"request_delete_range": {"key": key}}],
            [],
        )

    async def entries(self) -> list[Entry]:
        await self._key_ok()
        return [_entry_of(kv).entry for kv in await self._range(self._prefix + "token/", prefix=True)]

    async def members(self) -> list[Member]:
        found = [_member_of(kv) for kv in await self._range(self._prefix + "member/", prefix=True)]
        return [m for m in found if m is not None]

    async def close(self) -> None:
        """Close the connections. The lease is left to run out (not revoked): a wrsrvd that
        restarts while its sessions live on keeps its entries for the TTL, as a LAN member does."""
        await self._gateway.close()

    # --- what the server's membership asks of a directory (wayray.server.pooling) --------------------

    def home(self, digest: str) -> str:
        """etcd decides every claim: one home for all digests."""
        return HOME

    def alive(self) -> list[str]:
        """The members whose leases lived at the last keep-alive round."""
        return sorted({self.me.id, *self._members})

    def peer(self, member_id: str) -> Peer | None:
        """A member to send a badge to (its pool port is not used: etcd answers for it)."""
        member = self._members.get(member_id)
        return None if member is None else Peer(member, member.host, 0)

    def set_peers(self, peers: list[Peer]) -> None:
        """Discovery's members: etcd's own list is the one that counts (kept by each round)."""

    async def keep_alive_round(self) -> None:
        """Renew this member's lease (joining again if it lapsed: its entries must then be claimed
        again) and list the members etcd knows. The key check record is read again every round: a
        rotation made by another member stops this one's new claims (each claim checks it as well)."""
        lapsed = None
        if self._own is not None:
            try:
                await self.keep_alive(self._own)
            except LeaseExpired:
                lapsed = self._own
        # Not patient (like the keep-alive): the next round comes within a second.
        state = await self.check_key(patient=False)
        if self._own is None or lapsed is not None:
            if state == "foreign":
                self._own = None  # it does not join (again): the refusal is logged
                return
            if lapsed is None:
                await self.join(self.me, LEASE_TTL)
                # It did not answer when this member started (or refused its key until now).
                log.info("pool: sharing the session directory in etcd as member %s (etcd answers now)",
                         self.me.id)  # fmt: skip
            else:
                log.warning("pool: this member's lease in etcd had expired; joining again")
                await self.join(self.me, lapsed.ttl)
                self.on_lease_lost(HOME)
        members = {}
        proven = set()
        for kv in await self._range(self._prefix + "member/", prefix=True):
            member = _member_of(kv)
            if member is None:
                continue
            if member.id == self.me.id:
                continue
            if not self._trusted(member):
                log.warning(
                    "pool: etcd lists member %s (%s) with identity %s, which is not among the pool's "
                    "fingerprints: no badge is sent there",
                    member.id,
                    member.name,
                    member.fingerprint,
                )
                continue
            members[member.id] = member
            if same(_json_field(kv, "key_check"), self._check):
                proven.add(member.id)
        self._members = members
        self._proven = proven


def _entry_json(e: Entry) -> dict[str, Any]:
    return {"digest": e.digest, "member": e.member, "session_id": e.session_id, "state": e.state.value,
            "claimed_at": e.claimed_at, "since": e.since}  # fmt: skip


def _kvs_in(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The key-values of the first range answer among a transaction's responses."""
    for response in responses:
        found = _get(response, "response_range")
        if isinstance(found, dict):
            return list(found.get("kvs") or [])
    return []


def _json_field(kv: dict[str, Any], name: str) -> object:
    try:
        obj = json.loads(_unb64(kv.get("value", "")))
    except ValueError:
        return None
    return obj.get(name) if isinstance(obj, dict) else None
