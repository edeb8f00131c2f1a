"""`edgebox serve` as a real process: first start, clean stop, and refusals that say why."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.daemon import running, start, write_config


def get(url: str, token: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_start_then_clean_stop(tmp_path: Path, sig: int) -> None:
    config = write_config(tmp_path)
    with running(config) as daemon:
        token = daemon.admin_token
        assert token and token.startswith("ebx_")
        assert get(daemon.api_url + "/api/v1/health")[0] == 200
        assert get(daemon.api_url + "/api/v1/machines")[0] == 401
        status, site = get(daemon.api_url + "/api/v1/site", token)
        assert status == 200 and site["name"] == "test-site"
        assert daemon.stop(sig) == 0
        assert "Traceback" not in daemon.stderr
        assert "database closed" in daemon.stderr
    # A second start keeps the site and the token, and prints no new token.
    with running(config, name="again") as again:
        assert again.admin_token is None
        status, site2 = get(again.api_url + "/api/v1/site", token)
        assert status == 200 and site2["site_id"] == site["site_id"]
        assert again.stop() == 0


def test_machine_facing_http_answers(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = yaml.safe_load(config.read_text())["machine_http"]["port"]
    with running(config) as daemon:
        assert get(f"http://127.0.0.1:{port}/health")[0] == 200
        daemon.stop()


def test_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        config = write_config(tmp_path, api={"host": "127.0.0.1", "port": port})
        daemon = start(config, wait=False)
        assert daemon.proc.wait(20) == 1
    assert f"cannot listen on 127.0.0.1:{port} for the API" in daemon.stderr
    assert "set api.port" in daemon.stderr
    assert "Traceback" not in daemon.stderr


def test_refuses_a_bad_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, api={"port": "eighty"})
    daemon = start(config, wait=False)
    assert daemon.proc.wait(20) == 1
    assert f"{config}: api.port: expected an integer" in daemon.stderr
    assert "Traceback" not in daemon.stderr


def test_refuses_a_second_instance_on_the_same_data(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running(config) as first:
        other = write_config(tmp_path / "other", data_dir=str(tmp_path / "data"))
        second = start(other, wait=False, name="second")
        assert second.proc.wait(20) == 1
        assert "in use by another edgebox process" in second.stderr
        first.stop()
