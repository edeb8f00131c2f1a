"""Configuration: defaults, and errors that name the file, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebox.bootstrap.config_file import default_config_path, load_settings
from edgebox.domain.settings import ConfigError, default_data_dir, parse_settings


def parse(data: object):  # type: ignore[no-untyped-def]
    return parse_settings(data, "test.yaml", "/data")


def test_defaults() -> None:
    s = parse(None)
    assert (s.api.host, s.api.port) == ("127.0.0.1", 5240)
    assert (s.machine_http.host, s.machine_http.port) == ("0.0.0.0", 5248)
    assert s.data_dir == "/data" and s.database_path == Path("/data/edgebox.db")
    assert s.database.synchronous == "full"
    assert s.log.level == "info"


def test_values_are_taken() -> None:
    s = parse({"api": {"port": 8080, "host": "::1"}, "log": {"format": "json"}, "data_dir": "/x"})
    assert s.api.port == 8080 and s.api.host == "::1"
    assert s.machine_http.port == 5248  # untouched sections keep defaults
    assert s.log.format == "json" and s.data_dir == "/x"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"apii": {}}, "test.yaml: apii: unknown key (known keys here: api, auth,"),
        ({"api": {"prot": 1}}, "api.prot: unknown key (known keys here: host, netns, port)"),
        ({"api": {"port": "http"}}, "api.port: expected an integer from 0 to 65535, got 'http'"),
        ({"api": {"port": 70000}}, "api.port: expected an integer from 0 to 65535, got 70000"),
        ({"api": {"port": True}}, "api.port: expected an integer"),
        ({"api": {"port": 1.5}}, "api.port: expected an integer"),
        ({"api": "yes"}, "api: expected a mapping of keys, got 'yes'"),
        ({"api": {"host": "localhost"}}, "api.host: expected an IP address"),
        (
            {"log": {"level": "loud"}},
            "log.level: expected 'debug' or 'info' or 'warning' or 'error'",
        ),
        ({"database": {"synchronous": "off"}}, "database.synchronous: expected 'full' or 'normal'"),
        ({"database": {"group_commit_ms": -1}}, "database.group_commit_ms: expected a number"),
        ({"auth": {"bootstrap_admin": "yes"}}, "auth.bootstrap_admin: expected true or false"),
        ({"data_dir": 5}, "data_dir: expected a string, got 5"),
        ([1, 2], "test.yaml: the top level: expected a mapping of keys, got a list"),
    ],
)
def test_errors_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert message in str(info.value)


def test_data_dir_defaults() -> None:
    home = Path("/home/u")
    assert default_data_dir({"SNAP_COMMON": "/snap/x"}, True, home) == "/snap/x"
    assert default_data_dir({}, True, home) == "/var/lib/edgebox"
    assert default_data_dir({}, False, home) == "/home/u/.local/share/edgebox"
    assert default_data_dir({"XDG_DATA_HOME": "/xdg"}, False, home) == "/xdg/edgebox"


def test_config_path_defaults() -> None:
    home = Path("/home/u")
    assert default_config_path(True, {}, home) == Path("/etc/edgebox/edgebox.yaml")
    assert default_config_path(False, {}, home) == Path("/home/u/.config/edgebox/edgebox.yaml")


def test_file_loading(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("api:\n  port: 9000\n")
    assert load_settings(path, {}).api.port == 9000
    path.write_text("api:\n  port: [1\n")
    with pytest.raises(ConfigError, match=r"e.yaml: not valid YAML at line 3, column 1"):
        load_settings(path, {})
    path.write_text("")
    assert load_settings(path, {}).api.port == 5240  # an empty file is all defaults
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml", {})
