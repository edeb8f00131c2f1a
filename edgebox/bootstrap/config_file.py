"""Reading the YAML configuration file into validated `Settings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from edgebox.domain.settings import ConfigError, Settings, default_data_dir, parse_settings

try:  # the C loader is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader  # type: ignore[assignment]


def default_config_path(is_root: bool, env: Mapping[str, str], home: Path) -> Path:
    if is_root:
        return Path("/etc/edgebox/edgebox.yaml")
    base = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / "edgebox" / "edgebox.yaml"


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the file. No --config and no file at the default place: defaults."""
    env = os.environ if env is None else env
    is_root = os.geteuid() == 0
    home = Path.home()
    explicit = path is not None
    path = path or default_config_path(is_root, env, home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: the configuration file does not exist") from None
        text = ""
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_settings(data, str(path), default_data_dir(env, is_root, home))
