"""The `chassis_control` program of the simulated BMC (see ipmi_sim.py): keeps the machine's
power and boot device in a JSON file, so a test can see what the BMC was told.

ipmi_sim runs it through the shell as `PROGRAM get power|boot ...` and `PROGRAM set NAME VALUE
[NAME VALUE ...]` with NAME power (1/0), reset (1), shutdown (1, the ACPI soft-off request),
boot (none|pxe|default|cdrom|bios) or identify. A `get` prints `name:value` lines. It runs with
the standard library only (`python -I -S`), once per chassis command, so it stays tiny.

    python ipmi_sim_hook.py STATE_FILE get power
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

INITIAL = {"power": 0, "boot": "none"}
BOOT_VALUES = ("none", "pxe", "default", "cdrom", "bios")


def read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return dict(INITIAL)
    assert isinstance(state, dict)
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state))
    os.replace(partial, path)  # a test reading at the same time sees old or new, never half


def _set(state: dict[str, Any], name: str, value: str) -> None:
    if name == "power":
        state["power"] = 1 if value == "1" else 0
    elif name == "shutdown":
        state["power"] = 0  # the OS obeys the soft-off request at once
    elif name == "boot":
        if value not in BOOT_VALUES:
            raise ValueError(f"invalid boot value: {value}")
        state["boot"] = value
    elif name not in ("reset", "identify"):  # a reset leaves the power as it is
        raise ValueError(f"invalid parameter: {name}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: ipmi_sim_hook.py STATE_FILE get|set ...")
        return 1
    path, op, args = Path(argv[0]), argv[1], argv[2:]
    state = read_state(path)
    if op == "get":
        for name in args:
            if name not in state:
                print(f"invalid parameter: {name}")
                return 1
            print(f"{name}:{state[name]}")
        return 0
    if op != "set" or len(args) % 2:
        print(f"cannot {op} {' '.join(args)}")
        return 1
    events = list(state.get("events", []))
    for name, value in zip(args[::2], args[1::2], strict=True):
        try:
            _set(state, name, value)
        except ValueError as exc:
            print(exc)
            return 1
        events.append(f"{name} {value}")
    state["events"] = events
    state["changed_at"] = time.time()
    write_state(path, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
