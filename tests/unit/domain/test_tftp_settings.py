"""The `tftp:` settings: defaults, bounds, and the checks the generic walker cannot make."""

from __future__ import annotations

import pytest

from edgebox.domain.settings import ConfigError, parse_section
from edgebox.domain.tftp_settings import TftpInterfaceSettings, TftpSettings, check_tftp_settings


def parse(data: object) -> TftpSettings:
    settings = parse_section(TftpSettings, data, "test.yaml", "tftp")
    check_tftp_settings(settings, "test.yaml")
    return settings


def test_defaults_serve_nothing() -> None:
    s = parse({})
    assert s.interfaces == () and s.roots == ()
    assert (s.max_transfers, s.max_blksize, s.max_windowsize) == (128, 1468, 16)
    assert (s.timeout, s.retries) == (1.0, 5)


def test_values_are_taken() -> None:
    s = parse(
        {
            "interfaces": [{"name": "eth1"}, {"name": "veth-srv", "netns": "lab"}],
            "roots": ["/srv/tftp", "/var/lib/edgebox/firmware-images"],
            "max_transfers": 2,
            "timeout": 0.5,
            "max_windowsize": 1,
        }
    )
    assert s.interfaces == (
        TftpInterfaceSettings("eth1", ""),
        TftpInterfaceSettings("veth-srv", "lab"),
    )
    assert s.roots == ("/srv/tftp", "/var/lib/edgebox/firmware-images")
    assert (s.max_transfers, s.timeout, s.max_windowsize) == (2, 0.5, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"interfaces": [{"netns": "x"}]}, "tftp.interfaces[0].name: this key is required"),
        ({"interfaces": ["eth1"]}, "tftp.interfaces[0]: expected a mapping of keys"),
        ({"max_transfers": 0}, "tftp.max_transfers: expected an integer from 1 to 4096, got 0"),
        ({"max_blksize": 65465}, "tftp.max_blksize: expected an integer from 512 to 65464"),
        ({"max_windowsize": 0}, "tftp.max_windowsize: expected an integer from 1 to 64"),
        ({"timeout": 0}, "tftp.timeout: expected a number from 0.1 to 10.0, got 0"),
        ({"retries": -1}, "tftp.retries: expected an integer from 0 to 20"),
        ({"roots": "/srv/tftp"}, "tftp.roots: expected a list"),
        ({"roots": ["srv/tftp"]}, "tftp.roots[0]: expected an absolute path, got 'srv/tftp'"),
        ({"port": 69}, "tftp.port: unknown key"),
        (
            {"interfaces": [{"name": "eth1"}, {"name": "eth1"}]},
            "tftp.interfaces[1].name: 'eth1' is listed twice",
        ),
    ],
)
def test_errors_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert message in str(info.value)


def test_the_same_name_in_two_namespaces_is_two_interfaces() -> None:
    s = parse({"interfaces": [{"name": "veth0", "netns": "a"}, {"name": "veth0", "netns": "b"}]})
    assert len(s.interfaces) == 2
