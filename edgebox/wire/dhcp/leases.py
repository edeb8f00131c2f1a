"""The lease table: which client holds which address, in memory, fast enough for a /16.

Theory of operation. There is one `Lease` record per address ever handed out, keyed by IP;
records are replaced, never deleted (an expired lease is remembered, so "was this address
ever bound" is answerable and a returning client gets its previous address back). A record
*holds* its address while it is OFFERED, BOUND or DECLINED (quarantine) and ``now`` is
before ``expires``; expiry is lazy, every check takes ``now``, and `expire` sweeps lapsed
holds to EXPIRED when the adapter wants them written or reported.

Clients are identified as RFC 2131 section 4.2 says: by option 61 (client identifier) if
they send it, else by ``chaddr``. One deliberate exception: an option 61 of type 1 (Ethernet)
whose data is the client's own MAC is the same identity as the MAC. PXE ROMs send no 61,
iPXE sends exactly that form, so without this a machine would take two addresses while it
boots. Reservations (MAC -> IP, from the inventory) belong to a MAC whatever option 61 says.

Allocation never scans a range per request. Each range has a pool: a cursor over addresses
that no record has ever held (amortised O(1): the cursor only moves forward past recorded
addresses) and a min-heap of ``(expires, ip)`` for recorded ones, whose top is the address
that has been free the longest. Heap entries are checked against the record on the way out
(a replaced record leaves a stale entry behind that is simply dropped), and a heap that
grows past twice the table is rebuilt, so renewals cannot grow it without bound.

No lease changes inside `DhcpServer.handle` (only the pools' cursors and stale heap entries
move, which changes no answer): the server returns a `LeaseChange` and the adapter calls
`apply` right away (before any ``await``), so the next packet sees it. For a durable change
the adapter takes `snapshot` first and calls `restore` if the database commit fails, then
sends nothing.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from edgebox.wire.dhcp.server_config import AddressRange, SubnetConfig
from edgebox.wire.dhcp.values import format_ipv4

ClientKey = bytes | str  # option 61 as sent, or the MAC as text; a bytes never equals a str


class LeaseState(enum.StrEnum):
    OFFERED = "offered"  # in memory only, for offer_hold seconds
    BOUND = "bound"
    RELEASED = "released"
    EXPIRED = "expired"
    DECLINED = "declined"  # quarantined until expires: a client or an ARP probe found it in use


_HOLDING = frozenset((LeaseState.OFFERED, LeaseState.BOUND, LeaseState.DECLINED))
_CLIENT_HOLD = frozenset((LeaseState.OFFERED, LeaseState.BOUND))


def client_key(mac: str, client_id: bytes | None) -> ClientKey:
    """The identity a lease belongs to (see the module docstring for the type-1 rule)."""
    if client_id is None or (client_id[:1] == b"\x01" and client_id[1:].hex(":") == mac):
        return mac
    return client_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    ip: int
    mac: str  # aa:bb:cc:dd:ee:ff; empty for an address found in use by an unknown host
    client_id: bytes | None  # option 61 as sent
    subnet_id: str
    state: LeaseState
    expires: float  # when the hold ends; for RELEASED/EXPIRED, when it ended
    hostname: str = ""
    ever_bound: bool = False  # a client of ours has used this address (no ARP probe needed)
    # Derived, stored once: the server and the table compare it several times per packet.
    key: ClientKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", client_key(self.mac, self.client_id))

    def holds(self, now: float) -> bool:
        """The address is taken (by a client, or by quarantine)."""
        return self.state in _HOLDING and self.expires > now

    def active(self, now: float) -> bool:
        """A client holds the address: an unexpired offer or binding."""
        return self.state in _CLIENT_HOLD and self.expires > now

    def __str__(self) -> str:
        return f"{format_ipv4(self.ip)} {self.state} mac={self.mac or '-'} until={self.expires}"


class ChangeKind(enum.StrEnum):
    OFFER = "offer"  # hold the address for an OFFER (memory only)
    WITHDRAW = "withdraw"  # the client took another server's offer (memory only)
    BIND = "bind"  # an ACK: new binding or renewal
    RELEASE = "release"  # DHCPRELEASE
    DECLINE = "decline"  # DHCPDECLINE: quarantine


DURABLE = frozenset((ChangeKind.BIND, ChangeKind.RELEASE, ChangeKind.DECLINE))


class LeaseChange(NamedTuple):
    """The new record for ``lease.ip``. Durable changes are committed before the reply.

    A `NamedTuple` (one per packet, cheaper to build than a frozen dataclass), like
    `LeaseSnapshot`.
    """

    kind: ChangeKind
    lease: Lease

    @property
    def durable(self) -> bool:
        return self.kind in DURABLE


class LeaseSnapshot(NamedTuple):
    """What the table held at ``ip`` (None: nothing), for `LeaseTable.restore`."""

    ip: int
    lease: Lease | None


def _heap_of(records: Iterable[Lease], rng: AddressRange | None) -> list[tuple[float, int]]:
    """``(expires, ip)`` of the records in ``rng``, or of the holds if ``rng`` is None."""
    if rng is None:
        heap = [(r.expires, r.ip) for r in records if r.state in _HOLDING]
    else:
        heap = [(r.expires, r.ip) for r in records if rng.start <= r.ip <= rng.end]
    heapq.heapify(heap)
    return heap


class _RangePool:
    """Free-address finder for one range (see the module docstring)."""

    __slots__ = ("cursor", "heap", "rng")

    def __init__(self, rng: AddressRange, records: Iterable[Lease]) -> None:
        self.rng = rng
        self.cursor = rng.start
        self.heap = _heap_of(records, rng)

    def fresh(self, by_ip: Mapping[int, Lease], reserved: Mapping[int, str]) -> int | None:
        ip, end = self.cursor, self.rng.end
        while ip <= end and (ip in by_ip or ip in reserved):
            ip += 1
        self.cursor = ip
        return ip if ip <= end else None

    def longest_free(
        self, now: float, by_ip: Mapping[int, Lease], reserved: Mapping[int, str], mac: str
    ) -> int | None:
        heap = self.heap
        while heap:
            expires, ip = heap[0]
            record = by_ip.get(ip)
            if record is None or record.expires != expires:
                heapq.heappop(heap)  # stale: the record was replaced
                continue
            if expires > now:
                return None
            owner = reserved.get(ip)
            if owner is not None and owner != mac:
                heapq.heappop(heap)  # reserved for another MAC; set_reservations rebuilds
                continue
            return ip
        return None


class LeaseTable:
    """All lease records, indexed by IP and by client. See the module docstring."""

    def __init__(self, *, quarantine: float = 600.0) -> None:
        self.quarantine = quarantine  # for `mark_in_use`
        self._by_ip: dict[int, Lease] = {}
        self._by_key: dict[ClientKey, list[int]] = {}
        self._reservations: dict[str, int] = {}
        self._reserved_by_ip: dict[int, str] = {}
        self._pools: dict[AddressRange, _RangePool] = {}
        self._expiry: list[tuple[float, int]] = []  # holds only, for `expire`

    # -- loading and reservations ------------------------------------------------------------

    def load(self, leases: Iterable[Lease]) -> None:
        """Replace the whole table (at start, from the database)."""
        self._by_ip.clear()
        self._by_key.clear()
        self._pools.clear()
        self._expiry.clear()
        for lease in leases:
            self._put(lease)

    def set_reservations(self, reservations: Mapping[str, int]) -> None:
        """MAC -> IP. The MAC always gets that IP (if no one else holds it); no one else does."""
        by_ip: dict[int, str] = {}
        for given, ip in reservations.items():
            mac = given.lower()
            if ip in by_ip:
                raise ValueError(f"{format_ipv4(ip)} is reserved for both {by_ip[ip]} and {mac}")
            by_ip[ip] = mac
        self._reserved_by_ip = by_ip
        self._reservations = {mac: ip for ip, mac in by_ip.items()}
        self._pools.clear()  # pools skip reserved addresses; rebuild them lazily

    def reservation_for(self, mac: str) -> int | None:
        return self._reservations.get(mac)

    def reserved_mac(self, ip: int) -> str | None:
        return self._reserved_by_ip.get(ip)

    # -- reading -------------------------------------------------------------------------------

    def get(self, ip: int) -> Lease | None:
        return self._by_ip.get(ip)

    def __len__(self) -> int:
        return len(self._by_ip)

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._by_ip.values()))

    def leases_of(self, key: ClientKey) -> list[Lease]:
        return [self._by_ip[ip] for ip in self._by_key.get(key, ())]

    def find(self, key: ClientKey, subnet_id: str, now: float) -> Lease | None:
        """The client's current lease in the subnet, else its most recent previous one.

        Declined addresses are not "previous": the client refused them.
        """
        best: Lease | None = None
        for ip in self._by_key.get(key, ()):
            lease = self._by_ip[ip]
            if lease.subnet_id != subnet_id or lease.state is LeaseState.DECLINED:
                continue
            if lease.active(now):
                return lease
            if best is None or lease.expires > best.expires:
                best = lease
        return best

    def is_free_for(self, ip: int, key: ClientKey, mac: str, now: float) -> bool:
        """No one else holds ``ip`` or has it reserved, and it is not in quarantine."""
        owner = self._reserved_by_ip.get(ip)
        if owner is not None and owner != mac:
            return False
        lease = self._by_ip.get(ip)
        if lease is None or not lease.holds(now):
            return True
        if lease.state is LeaseState.DECLINED:
            return False
        # The reserved MAC takes over from itself under another client id (PXE ROM vs OS).
        return lease.key == key or (owner == mac and lease.mac == mac)

    def may_hold(self, ip: int, subnet: SubnetConfig, key: ClientKey, mac: str, now: float) -> bool:
        """May this client be given (or keep) ``ip`` in ``subnet``?

        Its reservation if it has one there that is free; otherwise an address of the
        subnet's ranges that is free for it.
        """
        reserved = self._reservations.get(mac)
        if (
            reserved is not None
            and subnet.contains(reserved)
            and self.is_free_for(reserved, key, mac, now)
        ):
            return ip == reserved
        return subnet.in_ranges(ip) and self.is_free_for(ip, key, mac, now)

    def needs_probe(self, ip: int) -> bool:
        """No client of ours has ever been bound to ``ip``: ARP-probe it before offering."""
        lease = self._by_ip.get(ip)
        return lease is None or not lease.ever_bound

    def choose_address(
        self, subnet: SubnetConfig, key: ClientKey, mac: str, requested: int | None, now: float
    ) -> int | None:
        """The address to offer, in RFC 2131 section 4.3.1 order (a reservation first).

        The client's current or previous address, then the requested one if valid and free,
        then a new one: never-used addresses first, then the one free the longest, so that
        returning clients keep finding their previous address free.
        """
        reserved = self._reservations.get(mac)
        if (
            reserved is not None
            and subnet.contains(reserved)
            and self.is_free_for(reserved, key, mac, now)
        ):
            return reserved
        own = self.find(key, subnet.id, now)
        if own is not None and self.may_hold(own.ip, subnet, key, mac, now):
            return own.ip
        if requested is not None and self.may_hold(requested, subnet, key, mac, now):
            return requested
        return self.allocate(subnet.ranges, mac, now)

    def allocate(self, ranges: Sequence[AddressRange], mac: str, now: float) -> int | None:
        """A free, unreserved address of ``ranges``, or None if they are exhausted."""
        reserved = self._reserved_by_ip
        for rng in ranges:
            ip = self._pool(rng).fresh(self._by_ip, reserved)
            if ip is not None:
                return ip
        for rng in ranges:
            ip = self._pool(rng).longest_free(now, self._by_ip, reserved, mac)
            if ip is not None:
                return ip
        return None

    # -- changing ------------------------------------------------------------------------------

    def apply(self, change: LeaseChange) -> None:
        self._put(change.lease)

    def snapshot(self, ip: int) -> LeaseSnapshot:
        return LeaseSnapshot(ip, self._by_ip.get(ip))

    def restore(self, snapshot: LeaseSnapshot) -> None:
        """Put back what `snapshot` saw (undo a change whose commit failed)."""
        if snapshot.lease is not None:
            self._put(snapshot.lease)
            return
        old = self._by_ip.pop(snapshot.ip, None)
        if old is not None:
            self._unindex(old)
        for pool in self._pools.values():
            if snapshot.ip in pool.rng and snapshot.ip < pool.cursor:
                pool.cursor = snapshot.ip  # never-used again

    def mark_in_use(self, ip: int, now: float) -> Lease:
        """An ARP probe found ``ip`` answered: quarantine it as held by an unknown host."""
        old = self._by_ip.get(ip)
        lease = Lease(
            ip=ip,
            mac="",
            client_id=None,
            subnet_id=old.subnet_id if old is not None else "",
            state=LeaseState.DECLINED,
            expires=now + self.quarantine,
        )
        self._put(lease)
        return lease

    def expire(self, now: float) -> list[Lease]:
        """Turn every lapsed hold into EXPIRED; return the holds that ended, as they were."""
        ended: list[Lease] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, ip = heapq.heappop(heap)
            lease = self._by_ip.get(ip)
            if lease is None or lease.expires != expires or lease.state not in _HOLDING:
                continue
            ended.append(lease)
            self._put(replace(lease, state=LeaseState.EXPIRED))
        return ended

    # -- internals -----------------------------------------------------------------------------

    def _pool(self, rng: AddressRange) -> _RangePool:
        pool = self._pools.get(rng)
        if pool is None:
            pool = self._pools[rng] = _RangePool(rng, self._by_ip.values())
        return pool

    def _put(self, lease: Lease) -> None:
        ip, key = lease.ip, lease.key
        old = self._by_ip.get(ip)
        if old is not None and old.key != key:
            self._unindex(old)
        self._by_ip[ip] = lease
        if lease.mac or lease.client_id is not None:
            ips = self._by_key.get(key)
            if ips is None:
                self._by_key[key] = [ip]
            elif ip not in ips:
                ips.append(ip)
        # Stale heap entries are dropped lazily; past this size a heap is rebuilt (O(n),
        # at most once per n changes).
        limit = 2 * len(self._by_ip) + 1024
        entry = (lease.expires, ip)
        for pool in self._pools.values():
            if pool.rng.start <= ip <= pool.rng.end:
                heapq.heappush(pool.heap, entry)
                if len(pool.heap) > limit:
                    pool.heap = _heap_of(self._by_ip.values(), pool.rng)
        if lease.state in _HOLDING:
            heapq.heappush(self._expiry, entry)
            if len(self._expiry) > limit:
                self._expiry = _heap_of(self._by_ip.values(), None)

    def _unindex(self, lease: Lease) -> None:
        ips = self._by_key.get(lease.key)
        if ips is not None and lease.ip in ips:
            ips.remove(lease.ip)
            if not ips:
                del self._by_key[lease.key]
