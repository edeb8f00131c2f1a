"""The `deploy:` settings: the watchdog's limit, its default and its bounds."""

from __future__ import annotations

import pytest

from edgebox.domain.deploy_settings import DeploySettings
from edgebox.domain.settings import ConfigError, parse_settings


def test_default_is_thirty_minutes_and_a_value_is_taken() -> None:
    assert parse_settings({}, "test.yaml", "/d").deploy == DeploySettings(timeout=1800)
    assert parse_settings({"deploy": {"timeout": 3600}}, "test.yaml", "/d").deploy.timeout == 3600


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"timeout": 10}, "deploy.timeout: expected an integer from 30 to 604800, got 10"),
        ({"timeout": "30m"}, "deploy.timeout: expected an integer"),
        ({"timeuot": 60}, "deploy.timeuot: unknown key"),
    ],
)
def test_bad_values_are_named(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_settings({"deploy": data}, "test.yaml", "/d")
