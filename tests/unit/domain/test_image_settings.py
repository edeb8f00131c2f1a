"""The `images:` settings: defaults, values, the cache directory, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebox.domain.settings import ConfigError, ImageSettings, parse_section, parse_settings


def test_defaults_trust_no_key_and_set_no_budget() -> None:
    settings = parse_settings({}, "test.yaml", "/var/lib/edgebox")
    assert settings.images == ImageSettings((), 0, "")
    assert settings.images_dir == Path("/var/lib/edgebox/images")


def test_values_are_taken() -> None:
    data = {
        "images": {
            "trusted_keys": ["/etc/edgebox/builder.pub"],
            "budget_bytes": 10 << 30,
            "dir": "/srv/images",
        }
    }
    settings = parse_settings(data, "test.yaml", "/var/lib/edgebox")
    assert settings.images.trusted_keys == ("/etc/edgebox/builder.pub",)
    assert settings.images.budget_bytes == 10 << 30
    assert settings.images_dir == Path("/srv/images")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"budget_bytes": -1}, "images.budget_bytes: expected an integer from 0"),
        ({"budget_bytes": "10G"}, "images.budget_bytes: expected an integer"),
        ({"trusted_keys": "/k.pub"}, "images.trusted_keys: expected a list"),
        ({"trusted_key": []}, "images.trusted_key: unknown key"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_section(ImageSettings, data, "test.yaml", "images")
