"""A fake QEMU monitor on a unix socket: the QMP wire protocol and QEMU's run-state rules.

It greets, insists on `qmp_capabilities` first, answers commands with `return` or `error`
(with QEMU's own error texts), and sends events. The VM part follows what QEMU 7.2 does
(measured): `system_reset` is only queued when the command returns, and its RESET event comes
after the reply; after a reset a VM that is not running is in "prelaunch"; `cont` in the
"shutdown" state is refused until a reset; two devices cannot share a bootindex.
Every command received is recorded in `commands`, in order, for the tests to check.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}


@dataclass
class FakeVm:
    status: str = "prelaunch"
    bootindex: dict[str, int] = field(default_factory=lambda: {"nic0": 1, "disk0": 2})
    resets: int = 0
    powerdowns: int = 0
    boot_order_at_reset: list[list[str]] = field(default_factory=list)

    def boot_order(self) -> list[str]:
        return [d for d, i in sorted(self.bootindex.items(), key=lambda kv: kv[1]) if i >= 0]


class QmpRefused(Exception):
    def __init__(self, desc: str, error_class: str = "GenericError") -> None:
        self.desc = desc
        self.error_class = error_class


class FakeQemu:
    """Serve `vm` on `path`. `extra_events` are sent before each reply (like QEMU's own events
    that can arrive at any time); `silent` makes it accept and then never greet; `refuse` maps
    a command to the error text QEMU answers it with; without `reset_event` a reset is never
    reported (a wedged QEMU)."""

    def __init__(self, path: Path, vm: FakeVm | None = None) -> None:
        self.path = path
        self.vm = vm or FakeVm()
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.extra_events: list[str] = []
        self.silent = False
        self.refuse: dict[str, str] = {}
        self.reset_event = True
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeQemu:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.silent:
                await reader.read()
                return
            await self._send(writer, GREETING)
            negotiated = False
            while line := await reader.readline():
                request = json.loads(line)
                name, args = request["execute"], request.get("arguments", {})
                self.commands.append((name, args))
                for event in self.extra_events:
                    await self._send(writer, {"event": event, "data": {}})
                reply: dict[str, Any] = {"id": request["id"]} if "id" in request else {}
                after: list[dict[str, Any]] = []
                if name == "qmp_capabilities":
                    negotiated = True
                    reply["return"] = {}
                elif not negotiated:
                    reply["error"] = {"class": "CommandNotFound", "desc": "Expecting capabilities"
                                      " negotiation with 'qmp_capabilities'"}  # fmt: skip
                else:
                    try:
                        reply["return"] = self._execute(name, args, after)
                    except QmpRefused as exc:
                        reply["error"] = {"class": exc.error_class, "desc": exc.desc}
                await self._send(writer, reply)
                for message in after:
                    await self._send(writer, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\r\n")
        await writer.drain()

    def _execute(self, name: str, args: dict[str, Any], after: list[dict[str, Any]]) -> Any:
        vm = self.vm
        if name in self.refuse:
            raise QmpRefused(self.refuse[name])
        if name == "query-status":
            return {"status": vm.status, "running": vm.status == "running", "singlestep": False}
        if name == "stop":
            vm.status = "paused" if vm.status == "running" else vm.status
            return {}
        if name == "cont":
            if vm.status in ("shutdown", "guest-panicked"):
                raise QmpRefused("Resetting the Virtual Machine is required")
            vm.status = "running"
            return {}
        if name == "system_reset":
            # QEMU queues the reset; it lands after the reply, and so does its event.
            vm.resets += 1
            vm.boot_order_at_reset.append(vm.boot_order())
            if vm.status != "running":
                vm.status = "prelaunch"
            if self.reset_event:
                after.append({"event": "RESET", "data": {"guest": False}})
            return {}
        if name == "system_powerdown":
            vm.powerdowns += 1
            return {}
        if name in ("qom-get", "qom-set"):
            return self._qom(name, args)
        raise QmpRefused(f"The command {name} has not been found", "CommandNotFound")

    def _qom(self, name: str, args: dict[str, Any]) -> Any:
        device = args["path"].removeprefix("/machine/peripheral/")
        if device not in self.vm.bootindex or args["property"] != "bootindex":
            raise QmpRefused(f"Device '{args['path']}' not found", "DeviceNotFound")
        if name == "qom-get":
            return self.vm.bootindex[device]
        value = int(args["value"])
        if value >= 0 and value in self.vm.bootindex.values():
            raise QmpRefused(f"The bootindex {value} has already been used")
        self.vm.bootindex[device] = value
        return {}
