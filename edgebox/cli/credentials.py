"""Where the CLI finds its server and token: flags, environment, the saved login, a default.

`edgebox login URL TOKEN` saves both to `$XDG_CONFIG_HOME/edgebox/cli.json` (by default
`~/.config/edgebox/cli.json`), readable by the user only. For each of the URL and the token,
the first of these wins: the command-line flag, the environment variable (click folds those two
together before we see them), the saved login, and for the URL a default of the local daemon.

One exception keeps a token from leaking: the saved token is sent only to the saved URL. If the
user points the CLI at another server with `--url` or `EDGEBOX_URL` and gives no token, there is
no token, and the message says why.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

DEFAULT_URL: Final = "http://127.0.0.1:5240"
LOGIN_FILE_MODE: Final = 0o600


class LoginFileError(Exception):
    """The saved login exists but cannot be read or used."""


@dataclass(frozen=True)
class SavedLogin:
    url: str
    token: str


@dataclass(frozen=True)
class Target:
    """The server the CLI talks to, and with which token (None: none was found)."""

    url: str
    token: str | None
    # Why there is no token, when the saved login was for a different server.
    saved_login_url: str | None = None


def login_file_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    # The XDG spec says a relative value is invalid and must be ignored.
    config_home = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return config_home / "edgebox" / "cli.json"


def normalize_url(url: str) -> str:
    """Check that `url` is an http(s) server URL and return it without a trailing slash.

    A URL given with the API prefix (`http://box:5240/api/v1`) is accepted too: people copy it
    from the API documentation.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    return url.removesuffix("/api/v1")


def load_login(path: Path) -> SavedLogin | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoginFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
        url, token = data["url"], data["token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LoginFileError(f"{path} is not a saved edgebox login; run 'edgebox logout'") from exc
    if not isinstance(url, str) or not isinstance(token, str):
        raise LoginFileError(f"{path} is not a saved edgebox login; run 'edgebox logout'")
    return SavedLogin(url=url, token=token)


def save_login(path: Path, login: SavedLogin) -> None:
    """Write the login atomically, mode 0600 from the first byte (the token is a secret)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".cli.", suffix=".tmp")
    try:
        # mkstemp already creates the file 0600; say so rather than rely on it.
        os.fchmod(fd, LOGIN_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"url": login.url, "token": login.token}, file, indent=2)
            file.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def remove_login(path: Path) -> bool:
    """Delete the saved login; False if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_target(url: str | None, token: str | None, saved: SavedLogin | None) -> Target:
    """Pick the URL and token (flag or environment first, then the saved login, then default)."""
    if url is not None:
        url = normalize_url(url)
    if saved is None:
        return Target(url=url or DEFAULT_URL, token=token or None)
    if url is None or url == saved.url:
        return Target(url=saved.url, token=token or saved.token)
    return Target(url=url, token=token or None, saved_login_url=None if token else saved.url)
