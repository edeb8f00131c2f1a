"""Commissioning, testing and release scripts: their metadata header, found and validated.

Theory of operation
-------------------
A script carries its metadata as YAML in a block of comments (see
docs/commissioning-contract.md §3):

    #!/bin/sh
    # --- edgebox script ---
    # name: cpu-stress
    # timeout: 5m
    # --- end ---

`script_header.extract_header()` finds that block and strips the comment markers, remembering
which line of the script each line of YAML came from. Decoding the YAML is the services' job
(this layer has no YAML library); they hand `validate_metadata()` the decoded mapping together
with a map from each field's dotted path ("timeout", "parameters.fraction.max") to its line in
the script.
Validation stops at the first problem and says where, what and what was expected:

    line 7: timeout: expected seconds or a duration like 5m, got 'soon'

An unknown field is an error too: a typo ("tiemout") must not silently fall back to a default.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from edgebox.domain.errors import EdgeboxError

MAX_TIMEOUT: Final = 7 * 86400

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
E = TypeVar("E", bound=enum.Enum)


class ScriptType(enum.StrEnum):
    COMMISSIONING = "commissioning"
    TESTING = "testing"
    RELEASE = "release"


class HardwareType(enum.StrEnum):
    NODE = "node"
    CPU = "cpu"
    MEMORY = "memory"
    STORAGE = "storage"
    NETWORK = "network"
    GPU = "gpu"


class Parallel(enum.StrEnum):
    DISABLED = "disabled"  # runs alone
    INSTANCE = "instance"  # one at a time per script name (one disk after another)
    ANY = "any"  # alongside anything else that allows it


class ParamType(enum.StrEnum):
    STORAGE = "storage"  # one result per disk: EDGEBOX_DEVICE=/dev/NAME
    INTERFACE = "interface"  # one result per NIC: EDGEBOX_INTERFACE=NAME
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOLEAN = "boolean"


PER_DEVICE: Final = frozenset({ParamType.STORAGE, ParamType.INTERFACE})


class MetadataError(EdgeboxError):
    """The header is wrong at `line` (of the script), in `field` (a dotted path)."""

    def __init__(self, line: int, field: str, problem: str) -> None:
        super().__init__(f"line {line}: {field}: {problem}")
        self.line = line
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    name: str
    type: ParamType
    default: str | int | float | bool | None = None
    min: float | None = None
    max: float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResultField:
    key: str
    title: str = ""
    unit: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ScriptMetadata:
    name: str
    type: ScriptType
    title: str = ""
    description: str = ""
    hardware_type: HardwareType = HardwareType.NODE
    timeout: int = 0  # seconds; 0 = none
    destructive: bool = False
    parallel: Parallel = Parallel.DISABLED
    parameters: tuple[ParameterSpec, ...] = ()
    results: tuple[ResultField, ...] = ()

    @property
    def per_device(self) -> ParameterSpec | None:
        """The storage or interface parameter that makes one result per device, if any."""
        return next((p for p in self.parameters if p.type in PER_DEVICE), None)


# -- validating the decoded mapping ----------------------------------------------------------

_FIELDS: Final = (
    "name", "title", "description", "type", "hardware_type", "timeout", "destructive",
    "parallel", "parameters", "results",
)  # fmt: skip
_PARAM_FIELDS: Final = ("type", "default", "min", "max", "description")
_RESULT_FIELDS: Final = ("title", "unit", "description")


@dataclass(frozen=True, slots=True)
class _Where:
    lines: Mapping[str, int]
    fallback: int

    def line(self, path: str) -> int:
        """The line of `path`, or of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return self.fallback

    def error(self, path: str, problem: str) -> MetadataError:
        return MetadataError(self.line(path), path, problem)


def validate_metadata(data: object, lines: Mapping[str, int], header_line: int) -> ScriptMetadata:
    """Check decoded header data; `lines` maps dotted field paths to script lines."""
    where = _Where(lines, header_line)
    if not isinstance(data, Mapping):
        raise where.error("header", f"expected a mapping of fields, got {_show(data)}")
    _no_unknown(data, _FIELDS, "", where)
    for required in ("name", "type"):
        if required not in data:
            raise MetadataError(header_line, required, "this field is required")
    name = _text(data, "name", where)
    if not _NAME.match(name):
        raise where.error(
            "name",
            f"{name!r} is not a valid script name (lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 63 characters)",
        )
    parameters = _parameters(data.get("parameters"), where)
    return ScriptMetadata(
        name=name,
        type=_choice(data, "type", ScriptType, where),
        title=_text(data, "title", where, name),
        description=_text(data, "description", where),
        hardware_type=_choice(data, "hardware_type", HardwareType, where, HardwareType.NODE),
        timeout=_timeout(data.get("timeout", 0), where),
        destructive=_flag(data, "destructive", where),
        parallel=_choice(data, "parallel", Parallel, where, Parallel.DISABLED),
        parameters=parameters,
        results=_results(data.get("results"), where),
    )


def parse_duration(value: object) -> int:
    """Seconds from 300, "300", "5m", "1h30m" or "90s"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(value)
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        match = _DURATION.match(text)
        if text and match:
            hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            return hours * 3600 + minutes * 60 + seconds
    raise ValueError(value)


def _timeout(value: object, where: _Where) -> int:
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise where.error(
            "timeout", f"expected seconds or a duration like 5m, got {_show(value)}"
        ) from None
    if seconds > MAX_TIMEOUT:
        raise where.error("timeout", f"at most {MAX_TIMEOUT} s (7 days), got {seconds} s")
    return seconds


def _parameters(value: object, where: _Where) -> tuple[ParameterSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise where.error("parameters", f"expected a mapping of parameters, got {_show(value)}")
    specs = []
    for name, spec in value.items():
        path = f"parameters.{name}"
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise where.error(
                path,
                "a parameter name is lowercase letters, digits and '_', starting with a letter",
            )
        specs.append(_parameter(name, spec, path, where))
    per_device = [s.name for s in specs if s.type in PER_DEVICE]
    if len(per_device) > 1:
        raise where.error(
            f"parameters.{per_device[1]}",
            f"only one storage or interface parameter per script (already: {per_device[0]})",
        )
    return tuple(specs)


def _parameter(name: str, spec: object, path: str, where: _Where) -> ParameterSpec:
    if not isinstance(spec, Mapping):
        raise where.error(path, f"expected a mapping such as {{type: int}}, got {_show(spec)}")
    _no_unknown(spec, _PARAM_FIELDS, path, where)
    if "type" not in spec:
        raise where.error(f"{path}.type", "this field is required")
    kind = _choice(spec, "type", ParamType, where, prefix=path)
    description = _text(spec, "description", where, prefix=path)
    if kind in PER_DEVICE:
        for extra in ("default", "min", "max"):
            if extra in spec:
                raise where.error(f"{path}.{extra}", f"a {kind.value} parameter takes no {extra}")
        return ParameterSpec(name, kind, description=description)
    low = _bound(spec, "min", kind, path, where)
    high = _bound(spec, "max", kind, path, where)
    if low is not None and high is not None and low > high:
        raise where.error(f"{path}.max", f"max ({high}) is below min ({low})")
    default = _default(spec.get("default"), kind, f"{path}.default", where)
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    if numeric and ((low is not None and default < low) or (high is not None and default > high)):
        raise where.error(
            f"{path}.default", f"the default {default} is outside min..max ({low}..{high})"
        )
    return ParameterSpec(name, kind, default, low, high, description)


def _bound(
    spec: Mapping[str, object], key: str, kind: ParamType, path: str, where: _Where
) -> float | None:
    if key not in spec:
        return None
    if kind not in (ParamType.INT, ParamType.FLOAT):
        raise where.error(f"{path}.{key}", f"only int and float parameters take {key}")
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(f"{path}.{key}", f"expected a number, got {_show(value)}")
    return value


def _default(value: object, kind: ParamType, path: str, where: _Where) -> Any:
    if value is None:
        return None
    if not fits_type(kind, value):
        raise where.error(path, f"expected a {kind.value} value, got {_show(value)}")
    return value


def fits_type(kind: ParamType, value: object) -> bool:
    """Whether `value` is a value of a `kind` parameter (a bool is not a number; an int is a
    float). For storage and interface parameters, which take no value, never."""
    if kind is ParamType.STRING:
        return isinstance(value, str)
    if kind is ParamType.BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is ParamType.INT:
        return isinstance(value, int)
    return kind is ParamType.FLOAT and isinstance(value, int | float)


def _results(value: object, where: _Where) -> tuple[ResultField, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise where.error("results", f"expected a mapping of result keys, got {_show(value)}")
    fields = []
    for key, spec in value.items():
        path = f"results.{key}"
        if not isinstance(key, str) or not key:
            raise where.error(path, "a result key must be a non-empty string")
        if spec is None:
            fields.append(ResultField(key))
            continue
        if not isinstance(spec, Mapping):
            raise where.error(path, f"expected a mapping such as {{title: ...}}, got {_show(spec)}")
        _no_unknown(spec, _RESULT_FIELDS, path, where)
        fields.append(
            ResultField(
                key,
                title=_text(spec, "title", where, prefix=path),
                unit=_text(spec, "unit", where, prefix=path),
                description=_text(spec, "description", where, prefix=path),
            )
        )
    return tuple(fields)


def _no_unknown(
    data: Mapping[Any, Any], known: tuple[str, ...], prefix: str, where: _Where
) -> None:
    for key in data:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise where.error(path, f"unknown field (known fields here: {', '.join(known)})")


def _text(
    data: Mapping[str, object], key: str, where: _Where, default: str = "", prefix: str = ""
) -> str:
    value = data.get(key)
    path = f"{prefix}.{key}" if prefix else key
    if value is None:
        return default
    if not isinstance(value, str):
        raise where.error(path, f"expected text, got {_show(value)}")
    return value.strip()


def _flag(data: Mapping[str, object], key: str, where: _Where) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise where.error(key, f"expected true or false, got {_show(value)}")
    return value


def _choice(
    data: Mapping[str, object],
    key: str,
    kind: type[E],
    where: _Where,
    default: E | None = None,
    *,
    prefix: str = "",
) -> E:
    path = f"{prefix}.{key}" if prefix else key
    value = data.get(key)
    if value is None and default is not None:
        return default
    try:
        return kind(value)
    except ValueError:
        expected = " or ".join(str(member.value) for member in kind)
        raise where.error(path, f"expected {expected}, got {_show(value)}") from None


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# -- storing metadata as JSON ------------------------------------------------------------------


def metadata_to_json(meta: ScriptMetadata) -> dict[str, Any]:
    return {
        "name": meta.name,
        "type": meta.type.value,
        "title": meta.title,
        "description": meta.description,
        "hardware_type": meta.hardware_type.value,
        "timeout": meta.timeout,
        "destructive": meta.destructive,
        "parallel": meta.parallel.value,
        "parameters": {
            p.name: {
                "type": p.type.value,
                "default": p.default,
                "min": p.min,
                "max": p.max,
                "description": p.description,
            }
            for p in meta.parameters
        },
        "results": {
            r.key: {"title": r.title, "unit": r.unit, "description": r.description}
            for r in meta.results
        },
    }


def metadata_from_json(data: Mapping[str, Any]) -> ScriptMetadata:
    """The inverse of `metadata_to_json`, for data this code wrote (trusted, not re-validated)."""
    return ScriptMetadata(
        name=data["name"],
        type=ScriptType(data["type"]),
        title=data.get("title", ""),
        description=data.get("description", ""),
        hardware_type=HardwareType(data.get("hardware_type", "node")),
        timeout=int(data.get("timeout", 0)),
        destructive=bool(data.get("destructive", False)),
        parallel=Parallel(data.get("parallel", "disabled")),
        parameters=tuple(
            ParameterSpec(
                name,
                ParamType(spec["type"]),
                spec.get("default"),
                spec.get("min"),
                spec.get("max"),
                spec.get("description", ""),
            )
            for name, spec in (data.get("parameters") or {}).items()
        ),
        results=tuple(
            ResultField(
                key, spec.get("title", ""), spec.get("unit", ""), spec.get("description", "")
            )
            for key, spec in (data.get("results") or {}).items()
        ),
    )
