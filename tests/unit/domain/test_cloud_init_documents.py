"""The NoCloud-net documents: YAML that cloud-init reads the way it was meant, whatever the
characters in a host name or key, and the vendor-data that phones home."""

from __future__ import annotations

import json

import yaml

from edgebox.domain import cloud_init


def test_meta_data_is_yaml_with_the_keys() -> None:
    keys = ['ssh-ed25519 AAAA olga@lap "quoted" # not a comment', "ssh-rsa BBBB: colon"]
    text = cloud_init.meta_data("abc123", "web-1", keys)
    assert yaml.safe_load(text) == {
        "instance-id": "abc123", "local-hostname": "web-1", "public-keys": keys,
    }  # fmt: skip
    assert yaml.safe_load(cloud_init.meta_data("x", "y", [])) == {
        "instance-id": "x", "local-hostname": "y",
    }  # fmt: skip


def test_user_data_is_as_given_and_empty_is_an_empty_cloud_config() -> None:
    given = "#!/bin/sh\necho hi\n"
    assert cloud_init.user_data(given) == given
    empty = cloud_init.user_data("  \n")
    assert empty.startswith("#cloud-config\n") and yaml.safe_load(empty) == {}


def test_vendor_data_phones_home() -> None:
    text = cloud_init.vendor_data("http://10.0.0.1:5248/cloud-init/abc123/phone-home")
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) == {
        "phone_home": {
            "url": "http://10.0.0.1:5248/cloud-init/abc123/phone-home",
            "post": ["instance_id"],
            "tries": 10,
        }
    }


def test_network_config_is_dhcp_on_the_boot_nic() -> None:
    assert yaml.safe_load(cloud_init.network_config("52:54:00:12:34:56")) == {
        "version": 2,
        "ethernets": {"boot": {"match": {"macaddress": "52:54:00:12:34:56"}, "dhcp4": True}},
    }
    fallback = yaml.safe_load(cloud_init.network_config(""))
    assert fallback["ethernets"]["boot"]["match"] == {"name": "e*"}
    assert json.dumps(fallback)  # plain data, nothing YAML-specific
