"""LeaseTable: identities, allocation order, holds, quarantine, expiry, undo."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from dhcp_server_lab import IP, LAN, lan_subnet

from edgebox.wire.dhcp.leases import (
    ChangeKind,
    Lease,
    LeaseChange,
    LeaseState,
    LeaseTable,
    client_key,
)
from edgebox.wire.dhcp.server_config import AddressRange, SubnetConfig

MAC_A = "52:54:00:aa:aa:aa"
MAC_B = "52:54:00:bb:bb:bb"
T = 1000.0


def lease(ip: int, mac: str = MAC_A, state: LeaseState = LeaseState.BOUND, **kw: object) -> Lease:
    values: dict[str, object] = {
        "ip": ip,
        "mac": mac,
        "client_id": None,
        "subnet_id": LAN,
        "state": state,
        "expires": T + 100,
        "ever_bound": state is LeaseState.BOUND,
    }
    values.update(kw)
    return Lease(**values)  # type: ignore[arg-type]


def small_subnet(first: str = "10.0.0.100", last: str = "10.0.0.103") -> SubnetConfig:
    return lan_subnet(ranges=(AddressRange(IP(first), IP(last)),))


def test_client_key_is_option_61_unless_it_is_just_the_mac() -> None:
    assert client_key(MAC_A, None) == MAC_A
    assert client_key(MAC_A, b"\x01" + bytes.fromhex("525400aaaaaa")) == MAC_A
    duid = b"\xff\x00\x00\x00\x01\x00\x04\x12\x34"
    assert client_key(MAC_A, duid) == duid
    # Type 1 but another MAC: another identity.
    other = b"\x01" + bytes.fromhex("525400bbbbbb")
    assert client_key(MAC_A, other) == other


def test_new_addresses_come_in_order_and_skip_reserved_and_recorded_ones() -> None:
    table = LeaseTable()
    table.set_reservations({MAC_B: IP("10.0.0.101")})
    table.apply(LeaseChange(ChangeKind.BIND, lease(IP("10.0.0.100"))))
    subnet = small_subnet()
    assert table.allocate(subnet.ranges, "52:54:00:00:00:01", T) == IP("10.0.0.102")


def test_an_address_free_longest_is_reused_first_once_never_used_ones_run_out() -> None:
    table = LeaseTable()
    subnet = small_subnet("10.0.0.100", "10.0.0.101")
    table.load(
        [
            lease(IP("10.0.0.100"), MAC_A, LeaseState.EXPIRED, expires=T - 10),
            lease(IP("10.0.0.101"), MAC_B, LeaseState.EXPIRED, expires=T - 500),
        ]
    )
    assert table.allocate(subnet.ranges, "52:54:00:00:00:01", T) == IP("10.0.0.101")


def test_exhausted_ranges_give_none() -> None:
    table = LeaseTable()
    subnet = small_subnet("10.0.0.100", "10.0.0.101")
    table.load([lease(IP("10.0.0.100")), lease(IP("10.0.0.101"), MAC_B)])
    assert table.allocate(subnet.ranges, "52:54:00:00:00:01", T) is None
    # Once a lease lapses, its address is free again (lazily, without a sweep).
    assert table.allocate(subnet.ranges, "52:54:00:00:00:01", T + 101) == IP("10.0.0.100")


def test_choose_prefers_current_then_previous_then_requested_then_new() -> None:
    table = LeaseTable()
    subnet = small_subnet()
    requested = IP("10.0.0.103")
    assert table.choose_address(subnet, MAC_A, MAC_A, requested, T) == requested
    assert table.choose_address(subnet, MAC_A, MAC_A, None, T) == IP("10.0.0.100")
    table.apply(LeaseChange(ChangeKind.BIND, lease(IP("10.0.0.102"), expires=T - 1)))
    # Expired, but remembered: the previous address wins over the requested one.
    assert table.choose_address(subnet, MAC_A, MAC_A, requested, T) == IP("10.0.0.102")
    # Requested outside the ranges is not valid.
    assert table.choose_address(subnet, MAC_B, MAC_B, IP("10.0.0.5"), T) == IP("10.0.0.100")


def test_a_reservation_goes_only_to_its_mac() -> None:
    table = LeaseTable()
    subnet = small_subnet()
    reserved = IP("10.0.0.20")  # outside the dynamic range, inside the subnet
    table.set_reservations({MAC_A.upper(): reserved})
    assert table.choose_address(subnet, MAC_A, MAC_A, None, T) == reserved
    assert table.choose_address(subnet, MAC_B, MAC_B, reserved, T) != reserved
    assert not table.is_free_for(reserved, MAC_B, MAC_B, T)
    assert table.may_hold(reserved, subnet, MAC_A, MAC_A, T)
    assert not table.may_hold(IP("10.0.0.100"), subnet, MAC_A, MAC_A, T)


def test_a_reserved_mac_takes_over_from_itself_under_another_client_id() -> None:
    table = LeaseTable()
    reserved = IP("10.0.0.20")
    table.set_reservations({MAC_A: reserved})
    table.apply(LeaseChange(ChangeKind.BIND, lease(reserved)))
    duid = b"\xff\x01\x02\x03"
    assert table.is_free_for(reserved, duid, MAC_A, T)
    assert not table.is_free_for(reserved, MAC_B, MAC_B, T)


def test_two_macs_cannot_reserve_one_address() -> None:
    with pytest.raises(ValueError, match="reserved for both"):
        LeaseTable().set_reservations({MAC_A: IP("10.0.0.20"), MAC_B: IP("10.0.0.20")})


def test_quarantine_holds_the_address_against_everyone_until_it_ends() -> None:
    table = LeaseTable()
    ip = IP("10.0.0.100")
    table.apply(LeaseChange(ChangeKind.DECLINE, lease(ip, state=LeaseState.DECLINED)))
    assert not table.is_free_for(ip, MAC_A, MAC_A, T)
    assert not table.is_free_for(ip, MAC_B, MAC_B, T)
    assert table.is_free_for(ip, MAC_B, MAC_B, T + 100)
    assert table.needs_probe(ip)
    # A declined address is not the client's "previous" one.
    assert table.find(MAC_A, LAN, T + 200) is None


def test_find_prefers_the_active_lease() -> None:
    table = LeaseTable()
    table.apply(LeaseChange(ChangeKind.BIND, lease(IP("10.0.0.100"), expires=T + 900)))
    table.apply(LeaseChange(ChangeKind.BIND, lease(IP("10.0.0.101"), expires=T - 1)))
    found = table.find(MAC_A, LAN, T)
    assert found is not None and found.ip == IP("10.0.0.100")
    found = table.find(MAC_A, LAN, T + 1000)
    assert found is not None and found.ip == IP("10.0.0.100")  # the most recent one
    assert table.find(MAC_A, "10.20.0.0/24", T) is None


def test_expire_sweeps_lapsed_holds_and_reports_them_as_they_were() -> None:
    table = LeaseTable()
    bound = lease(IP("10.0.0.100"), expires=T + 10)
    offered = lease(IP("10.0.0.101"), MAC_B, LeaseState.OFFERED, expires=T + 20)
    table.load([bound, offered])
    assert table.expire(T + 5) == []
    assert table.expire(T + 15) == [bound]
    assert table.expire(T + 30) == [offered]
    assert table.expire(T + 40) == []
    swept = table.get(IP("10.0.0.100"))
    assert swept is not None and swept.state is LeaseState.EXPIRED and swept.ever_bound
    # Remembered: the client's previous address.
    previous = table.find(MAC_A, LAN, T + 40)
    assert previous is not None and previous.ip == IP("10.0.0.100")


def test_renewal_replaces_the_expiry_and_the_old_one_is_not_swept() -> None:
    table = LeaseTable()
    first = lease(IP("10.0.0.100"), expires=T + 10)
    table.apply(LeaseChange(ChangeKind.BIND, first))
    table.apply(LeaseChange(ChangeKind.BIND, replace(first, expires=T + 1000)))
    assert table.expire(T + 500) == []


def test_restore_undoes_a_change() -> None:
    table = LeaseTable()
    subnet = small_subnet()
    ip = table.allocate(subnet.ranges, MAC_A, T)
    assert ip == IP("10.0.0.100")
    before = table.snapshot(ip)
    table.apply(LeaseChange(ChangeKind.BIND, lease(ip)))
    assert table.allocate(subnet.ranges, MAC_B, T) == IP("10.0.0.101")
    table.restore(before)
    assert table.get(ip) is None
    assert table.leases_of(MAC_A) == []
    assert table.allocate(subnet.ranges, MAC_B, T) == ip  # never used again
    # Restoring a record puts the previous holder back, index and all.
    table.apply(LeaseChange(ChangeKind.BIND, lease(ip, MAC_B)))
    snap = table.snapshot(ip)
    table.apply(LeaseChange(ChangeKind.BIND, lease(ip, MAC_A, expires=T + 5000)))
    table.restore(snap)
    assert table.leases_of(MAC_A) == []
    assert [x.ip for x in table.leases_of(MAC_B)] == [ip]


def test_mark_in_use_quarantines_for_an_unknown_host() -> None:
    table = LeaseTable(quarantine=60.0)
    ip = IP("10.0.0.100")
    table.apply(LeaseChange(ChangeKind.OFFER, lease(ip, state=LeaseState.OFFERED)))
    marked = table.mark_in_use(ip, T)
    assert marked.state is LeaseState.DECLINED and marked.mac == "" and marked.expires == T + 60
    assert table.leases_of(MAC_A) == []
    assert not table.is_free_for(ip, MAC_A, MAC_A, T + 59)


def test_heaps_stay_bounded_under_many_renewals() -> None:
    table = LeaseTable()
    subnet = small_subnet()
    table.allocate(subnet.ranges, MAC_A, T)  # builds the pool
    first = lease(IP("10.0.0.100"))
    for i in range(5000):
        table.apply(LeaseChange(ChangeKind.BIND, replace(first, expires=T + i)))
    assert len(table._expiry) <= 2 * len(table) + 1024
    assert all(len(pool.heap) <= 2 * len(table) + 1024 for pool in table._pools.values())


def test_allocation_in_a_slash_16_with_10k_leases_is_fast() -> None:
    table = LeaseTable()
    rng = AddressRange(IP("10.1.0.10"), IP("10.1.239.255"))  # about 61k addresses
    subnet = SubnetConfig(
        id="10.1.0.0/16", network=IP("10.1.0.0"), prefix=16, ranges=(rng,), server_address=1
    )
    table.load(
        lease(rng.start + 2 * i, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", subnet_id=subnet.id)
        for i in range(10_000)
    )
    started = time.perf_counter()
    for i in range(2000):
        mac = f"06:00:00:00:{i >> 8:02x}:{i & 255:02x}"
        ip = table.choose_address(subnet, mac, mac, None, T)
        assert ip is not None
        table.apply(LeaseChange(ChangeKind.OFFER, lease(ip, mac, LeaseState.OFFERED)))
    assert time.perf_counter() - started < 1.0  # ~20 µs each would be 0.04 s
