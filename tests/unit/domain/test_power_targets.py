"""Where power drivers may connect: the default refusals, the allow-list that opens them,
and the checks at call time (names resolved by a stand-in resolver, no network)."""

from __future__ import annotations

import pytest

from edgebox.domain.power_targets import TargetError, TargetPolicy, parse_target_policy
from edgebox.domain.settings import ConfigError, parse_settings, power_target_policy
from edgebox.drivers.power.targets import TargetGuard, TargetRefused

DEFAULT = TargetPolicy()


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 inside IPv6
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata service"),
        ("fd00:ec2::254", "AWS metadata service"),
        ("100.100.100.200", "Alibaba Cloud metadata"),
        ("168.63.129.16", "Azure"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
    ],
)
def test_refused_by_default_with_how_to_allow_it(address: str, words: str) -> None:
    reason = DEFAULT.refusal(address)
    assert reason is not None and words in reason
    assert "power.allow_targets" in reason


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.20", "fd12::5", "100.64.0.9"])
def test_ordinary_addresses_are_targets(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_an_allow_list_entry_opens_what_it_covers_and_no_more() -> None:
    lab = parse_target_policy(["127.0.0.0/8", "fe80::/10"])
    assert lab.refusal("127.0.0.1") is None
    assert lab.refusal("::ffff:127.0.0.1") is None
    assert lab.refusal("fe80::7") is None
    assert lab.refusal("::1") is not None  # not listed
    assert lab.refusal("169.254.1.1") is not None


def test_a_metadata_address_is_opened_only_by_naming_it_exactly() -> None:
    link_local = parse_target_policy(["169.254.0.0/16"])
    assert link_local.refusal("169.254.3.4") is None
    reason = link_local.refusal("169.254.169.254")
    assert reason is not None and "lists exactly 169.254.169.254/32" in reason
    assert parse_target_policy(["169.254.169.254"]).refusal("169.254.169.254") is None


def test_allow_targets_only_refuses_everything_unlisted() -> None:
    strict = parse_target_policy(["10.20.0.0/16"], only_allowed=True)
    assert strict.refusal("10.20.3.4") is None
    reason = strict.refusal("10.0.0.5")
    assert reason is not None and "not in power.allow_targets" in reason


def test_entries_that_are_not_networks_are_refused() -> None:
    with pytest.raises(TargetError, match=r"expected a network such as 10\.0\.0\.0/24"):
        parse_target_policy(["localhost"])


def test_the_settings_section() -> None:
    settings = parse_settings(
        {"power": {"allow_targets": ["127.0.0.1/32"], "ipmi_max_workers": 8}}, "e.yaml", "/d"
    )
    assert settings.power.ipmi_max_workers == 8
    assert power_target_policy(settings.power).refusal("127.0.0.1") is None
    assert power_target_policy(parse_settings({}, "e.yaml", "/d").power).refusal("127.0.0.1")
    with pytest.raises(ConfigError, match=r"e\.yaml: power\.allow_targets\[1\]: expected a"):
        parse_settings({"power": {"allow_targets": ["10.0.0.0/8", "lab"]}}, "e.yaml", "/d")
    with pytest.raises(ConfigError, match=r"allow_targets_only: true, but power\.allow_targets is"):
        parse_settings({"power": {"allow_targets_only": True}}, "e.yaml", "/d")
    with pytest.raises(ConfigError, match="ipmi_max_workers: expected an integer from 1"):
        parse_settings({"power": {"ipmi_max_workers": 0}}, "e.yaml", "/d")


async def test_the_guard_resolves_names_and_refuses_if_any_address_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"bmc1.lab": ["10.0.0.5"], "sneaky.lab": ["10.0.0.6", "127.0.0.1"]}[host]

    guard = TargetGuard(DEFAULT, resolve)
    assert await guard.addresses("bmc1.lab", 623) == ["10.0.0.5"]
    assert await guard.address("10.0.0.9", 623) == "10.0.0.9"  # an address is not resolved
    with pytest.raises(TargetRefused) as caught:
        await guard.addresses("sneaky.lab", 443)
    assert str(caught.value).startswith(
        "sneaky.lab resolves to an address that is refused: 127.0.0.1 is a loopback address"
    )
    with pytest.raises(TargetRefused, match=r"^fe80::1 is a link-local address"):
        guard.check_addresses("fe80::1%eth0", ["fe80::1%eth0"])


async def test_the_real_resolver_finds_localhost_refused() -> None:
    with pytest.raises(TargetRefused, match="localhost resolves to an address that is refused"):
        await TargetGuard(DEFAULT).addresses("localhost", 623)
