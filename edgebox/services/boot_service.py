"""Network boot after DHCP: the iPXE script per machine, the agent's API, the boot timeline.

The script is rendered from the machine's state at request time, so a machine that changed
status since its last boot gets what it needs now: an unknown MAC enlists, New/Commissioning/
Testing/Disk erasing/Rescue/Deploying boot the ephemeral environment with that purpose, a
Deployed machine falls through to its disk (`exit 1`: with `exit 0` OVMF stops walking the
boot order and opens its setup menu), anything else powers off through the environment.

Each script carries a fresh token in the kernel command line. It speaks for the booting NIC's
MAC only and expires; the agent cannot act for any other machine with it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgebox.domain.boot_window import Claim
from edgebox.domain.enlistment import InventoryError, identity_of
from edgebox.domain.errors import StorageUnavailable
from edgebox.domain.identifiers import hostname_for, new_system_id
from edgebox.domain.lifecycle import Status
from edgebox.domain.models import EventLevel, Machine, NewEvent, NewMachine
from edgebox.domain.settings import BootSettings
from edgebox.services.boot_resources import BootResources
from edgebox.services.clock import Clock
from edgebox.services.event_service import EventService
from edgebox.services.loaders import LoaderCheck
from edgebox.storage.boot_store import BootStore, BootToken, Enlisted, EnlistRefused, TokenGrant
from edgebox.wire.cpio_newc import CpioEntry, encode_newc

log = logging.getLogger(__name__)

PURPOSE_OF: Mapping[Status, str] = {
    Status.NEW: "enlist",
    Status.COMMISSIONING: "commission",
    Status.TESTING: "test",
    Status.DEPLOYING: "deploy",
    Status.DISK_ERASING: "erase",
    Status.RESCUE_MODE: "rescue",
}
LOCAL_BOOT = frozenset({Status.DEPLOYED})
POWER_OFF_AFTER = frozenset({"enlist", "poweroff"})
NOTED_LIMIT = 4096
TOKEN_INITRD = "token.cpio"  # noqa: S105 (a file name) - the token's own initrd: /etc/edgebox/token in the ramdisk
PENDING_TOKEN_TTL = 300.0  # seconds from the script to the fetch of the token's initrd
CACHED_CALLS_LIMIT = 50_000  # authenticated agent calls remembered (a few MB)


class AgentAuthError(Exception):
    """The agent's token is missing, unknown or expired (401), or valid but not for what it
    was used for (403: another MAC, another address, another purpose)."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.status = 403 if forbidden else 401


class AgentInputError(ValueError):
    """The agent sent something unusable; the message names the field."""


@dataclass(frozen=True, slots=True)
class AgentCall:
    token: BootToken
    system_id: str | None


class LeaseLookup(Protocol):
    """What the DHCP server knows of addresses (nothing, when DHCP is off: `NoLeases`)."""

    def mac_for_ip(self, ip: str) -> str | None: ...

    def ips_of_mac(self, mac: str) -> frozenset[str]: ...


class NoLeases:
    def mac_for_ip(self, ip: str) -> str | None:
        return None

    def ips_of_mac(self, mac: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class _PendingToken:
    token: str
    source: str
    expires_at: float


class BootService:
    def __init__(
        self,
        settings: BootSettings,
        *,
        store: BootStore,
        events: EventService,
        clock: Clock,
        resources: BootResources,
        loaders: LoaderCheck,
        leases: LeaseLookup | None = None,
        boots_locally: Callable[[Machine], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._clock = clock
        self.resources = resources
        self.loaders = loaders
        self._leases = leases or NoLeases()
        # A Deploying machine whose image is written boots its disk (the deploy service knows).
        self._boots_locally = boots_locally or (lambda machine: False)
        self._noted: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(NOTED_LIMIT)
        # Every agent call is authenticated; at commissioning scale (a dozen calls a script,
        # a thousand machines) the two reads that takes were most of the database's reads.
        # Tokens are issued only here, so this process knows when one is superseded.
        self._calls: dict[str, AgentCall] = {}  # token hash -> the call's identity
        self._hash_of_mac: dict[str, str] = {}
        # Tokens on their way to the machine: fetched once, by the address that claimed them.
        self._pending: dict[str, _PendingToken] = {}

    def mac_for_ip(self, ip: str) -> str | None:
        return self._leases.mac_for_ip(ip)

    # The iPXE script

    async def script(self, mac: str, base_url: str, machine: Machine | None, source: str) -> str:
        """The script for `mac`, asked from `source`. A token goes out only as the boot window
        rule allows (domain/boot_window.py); it travels in an initrd of its own, fetched once
        (`token_cpio`), never on the kernel command line that consoles and logs show."""
        status = machine.status if machine is not None else None
        name = machine.hostname if machine is not None else mac
        if status in LOCAL_BOOT or (machine is not None and self._boots_locally(machine)):
            await self._step(mac, "script", "local disk", machine)
            return _local_boot_script(name)
        purpose = PURPOSE_OF.get(status, "poweroff") if status is not None else "enlist"
        resource = self.resources.current()
        if resource is None:
            await self._step(mac, "script", "failed: no ephemeral environment", machine)
            await self._events.append(
                NewEvent("boot.error", f"{mac}: no ephemeral environment imported; "
                         "run: edgebox boot-resources import DIR", data={"mac": mac})
            )  # fmt: skip
            return _failure_script("no ephemeral environment imported on this edgebox")
        token: str | None = None
        if purpose != "poweroff":
            token = await self._grant(mac, machine, purpose, source)
            if token is None:
                return _failure_script(f"no boot token for {mac} now (see the event log)")
        await self._step(mac, "script", purpose, machine)
        files = f"{base_url}/boot-resources/{resource.digest}"
        initrds = ["initrd.gz"]
        fetch_token = ""
        if token is not None:
            claim_id = secrets.token_urlsafe(18)
            self._pending[claim_id] = _PendingToken(
                token, source, self._clock.now() + PENDING_TOKEN_TTL
            )
            initrds.append(TOKEN_INITRD)
            fetch_token = f"initrd --name {TOKEN_INITRD} {base_url}/boot/token/{claim_id}\n"
        params = " ".join(
            [
                *(f"initrd={initrd}" for initrd in initrds),
                self._settings.kernel_params,
                f"edgebox.url={base_url}",
                f"edgebox.purpose={purpose}",
                f"edgebox.mac={mac}",
                f"BOOTIF=01-{mac.replace(':', '-')}",
            ]
        )
        return (
            "#!ipxe\n"
            f"echo edgebox: {name} ({status.value if status else 'unknown'}): {purpose}\n"
            f"kernel {files}/vmlinuz?mac={mac} {params}\n"
            f"initrd --name initrd.gz {files}/initrd.gz?mac={mac}\n"
            f"{fetch_token}"
            "boot\n"
        )

    async def _grant(
        self, mac: str, machine: Machine | None, purpose: str, source: str
    ) -> str | None:
        """A fresh token for this boot, if the window rule allows; else None (and an event)."""
        token = "ebb_" + secrets.token_urlsafe(24)
        grant = TokenGrant(_hash(token), mac, purpose, self._settings.token_ttl, source)
        self._forget_token_of(mac)
        if machine is None:
            if not await self._store.issue_unknown_token(grant):
                return None  # the MAC became known meanwhile: its window rules apply next boot
        else:
            claim = await self._store.claim(machine.id, grant, self._leases.ips_of_mac(mac))
            if claim is None:  # the status changed meanwhile: no window now
                return None
            if not claim.granted:
                await self._refused(mac, machine, claim)
                return None
        self._forget_token_of(mac)  # a call that raced the issue may have cached the old one
        return token

    async def _refused(self, mac: str, machine: Machine, claim: Claim) -> None:
        message = claim.refusal(mac)
        log.error("boot window refused mac=%s system_id=%s source=%s holder=%s",
                  mac, machine.system_id, claim.source, claim.holder)  # fmt: skip
        await self._events.append(
            NewEvent(
                "boot.refused",
                f"{machine.hostname}: {message}",
                machine=machine.system_id,
                level=EventLevel.ERROR,
                data={
                    "mac": mac,
                    "source": claim.source,
                    "holder": claim.holder,
                    "reason": claim.outcome.value,
                },
            )
        )

    def token_cpio(self, claim_id: str, source: str) -> bytes | None:
        """The token's initrd, once, for the address that claimed it (None: nothing to give)."""
        now = self._clock.now()
        for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[key]
        pending = self._pending.get(claim_id)
        if pending is None or pending.source != source:
            return None
        del self._pending[claim_id]
        # Compressed, though it is tiny: the kernel finds an uncompressed archive only at a
        # 4-byte-aligned offset of the concatenated initrds, and UEFI's Linux stub loads
        # `initrd=` files back to back (iPXE's BIOS loader pads; the stub does not). A gzip
        # stream may start anywhere.
        return gzip.compress(encode_newc(
            [CpioEntry("etc", None), CpioEntry("etc/edgebox", None),
             CpioEntry("etc/edgebox/token", pending.token.encode() + b"\n", mode=0o600)]
        ), mtime=0)  # fmt: skip

    # The agent's API

    async def authenticate(self, token: str | None, source: str = "") -> AgentCall:
        if not token:
            raise AgentAuthError("the agent API needs 'Authorization: Bearer <boot token>'")
        key = _hash(token)
        call = self._calls.get(key)
        if call is None:
            found = await self._store.token(key)
            if found is None:
                raise AgentAuthError("unknown boot token (superseded by a newer boot, or forged)")
            call = AgentCall(found, await self._store.machine_by_mac(found.mac))
            if call.system_id is not None:  # before enlistment the answer is about to change
                self._remember(key, call)
        if call.token.expires_at <= self._clock.now():
            raise AgentAuthError("the boot token has expired; boot the machine again")
        if call.token.source and source != call.token.source:
            raise AgentAuthError(
                f"this boot token was handed to {call.token.source}; it is not valid from "
                f"{source or 'an unknown address'}",
                forbidden=True,
            )
        return call

    def _remember(self, key: str, call: AgentCall) -> None:
        if len(self._calls) >= CACHED_CALLS_LIMIT:
            oldest = next(iter(self._calls))
            self._hash_of_mac.pop(self._calls.pop(oldest).token.mac, None)
        self._forget_token_of(call.token.mac)
        self._calls[key] = call
        self._hash_of_mac[call.token.mac] = key

    def _forget_token_of(self, mac: str) -> None:
        key = self._hash_of_mac.pop(mac, None)
        if key is not None:
            self._calls.pop(key, None)

    async def enlist(self, call: AgentCall, body: Mapping[str, Any]) -> dict[str, Any]:
        boot_mac = str(body.get("boot_mac") or call.token.mac).lower()
        if boot_mac != call.token.mac:
            raise AgentAuthError(
                f"this boot token is for {call.token.mac}, not {boot_mac}", forbidden=True
            )
        inventory = body.get("inventory")
        if not isinstance(inventory, dict):
            raise AgentInputError("inventory: expected an object")
        try:
            identity = identity_of(boot_mac, inventory)
        except InventoryError as exc:
            raise AgentInputError(str(exc)) from None

        def new_machine() -> NewMachine:
            system_id = new_system_id()
            return NewMachine(
                system_id, hostname_for(system_id), interfaces=(), arch="amd64/generic"
            )

        try:
            enlisted = await self._store.enlist(
                call.token.machine_id, identity, inventory, new_machine, _enlist_events
            )
        except EnlistRefused as exc:
            raise AgentAuthError(str(exc), forbidden=True) from None
        await self._step(boot_mac, "agent", "enlisted", enlisted.machine)
        return {"system_id": enlisted.machine.system_id, "status": enlisted.machine.status.value}

    async def heartbeat(self, call: AgentCall, body: Mapping[str, Any]) -> dict[str, Any]:
        action = "poweroff" if call.token.purpose in POWER_OFF_AFTER else "continue"
        return {"action": action}

    async def agent_status(self, call: AgentCall, body: Mapping[str, Any]) -> dict[str, Any]:
        event = str(body.get("event") or "")
        if not event or len(event) > 64:
            raise AgentInputError("event: expected a short name such as 'poweroff'")
        await self._events.append(
            NewEvent(
                "boot.agent",
                f"{call.token.mac}: agent reports {event}",
                machine=call.system_id,
                data={"mac": call.token.mac, "step": "agent", "detail": event},
            )
        )
        return {"ok": True}

    # Files and the timeline

    def loader_path(self, name: str) -> Path | None:
        if name not in self.loaders.good:
            return None
        return self.loaders.directory / name

    def note_loader_fetch(self, client_ip: str, filename: str) -> None:
        """From a synchronous path (the TFTP adapter): recorded by `run()` shortly after."""
        try:
            self._noted.put_nowait(("loader", client_ip, filename))
        except asyncio.QueueFull:
            log.debug("boot timeline queue full; dropped a loader step of %s", client_ip)

    async def run(self) -> None:
        while True:
            step, client_ip, detail = await self._noted.get()
            try:
                await self.fetched(step, None, client_ip, detail)
            except StorageUnavailable as exc:  # the writer logs the episode
                log.debug("boot step %s of %s not recorded: %s", step, client_ip, exc)
            except Exception:
                log.exception("cannot record boot step %s of %s", step, client_ip)

    async def fetched(self, step: str, mac: str | None, client_ip: str, detail: str) -> None:
        mac = mac or self.mac_for_ip(client_ip)
        if mac is not None:
            await self._step(mac, step, detail, None)

    async def _step(self, mac: str, step: str, detail: str, machine: Machine | None) -> None:
        await self._events.append(
            NewEvent(
                f"boot.{step}",
                f"{mac}: {step} {detail}",
                machine=machine.system_id if machine else None,
                data={"mac": mac, "step": step, "detail": detail},
            )
        )


def _enlist_events(enlisted: Enlisted) -> list[NewEvent]:
    machine, mac = (
        enlisted.machine,
        next((i.mac for i in enlisted.machine.interfaces if i.boot), ""),
    )
    how = "enlisted (new)" if enlisted.created else "re-enlisted (inventory updated)"
    data: dict[str, Any] = {"mac": mac, "enlisted": True, "user": "agent"}
    if enlisted.foreign_macs:
        data["foreign_macs"] = list(enlisted.foreign_macs)
    events = [
        NewEvent(
            "machine.created" if enlisted.created else "machine.enlisted",
            f"machine {machine.hostname} {how} from {mac}",
            machine=machine.system_id,
            data=data,
        )
    ]
    if enlisted.foreign_macs:
        events.append(
            NewEvent(
                "machine.foreign_nics",
                f"machine {machine.hostname}'s agent listed NICs of other machines "
                f"({', '.join(enlisted.foreign_macs)}); they were left where they are",
                machine=machine.system_id,
                level=EventLevel.WARNING,
                data={"macs": list(enlisted.foreign_macs)},
            )
        )
    if enlisted.duplicate_of:
        events.append(
            NewEvent(
                "machine.possible_duplicate",
                f"machine {machine.hostname} has the {enlisted.duplicate_by} of machine "
                f"{enlisted.duplicate_of}: the same server with another NIC, or a copied "
                "identity; not merged — an admin decides",
                machine=machine.system_id,
                level=EventLevel.WARNING,
                data={"duplicate_of": enlisted.duplicate_of, "by": enlisted.duplicate_by},
            )
        )
    return events


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _local_boot_script(name: str) -> str:
    # exit 1, not exit 0: OVMF treats 0 as "boot option done" and opens its setup menu
    # instead of trying the next boot option (the disk).
    return f"#!ipxe\necho edgebox: {name} is deployed: booting from its local disk\nexit 1\n"


def _failure_script(reason: str) -> str:
    return f"#!ipxe\necho edgebox: cannot boot: {reason}\nsleep 10\nexit 1\n"
