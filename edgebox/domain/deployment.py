"""Deployments and releases: the records, the request checks, and the rules of the agent's calls.

Theory of operation
-------------------
A deploy or a release of one machine is a `Deployment` row (docs/deploy-contract.md). It is
`queued` while it waits for its wave of a rollout, `running` while edgebox and the machine's
agent work on it, and ends `succeeded`, `failed`, `aborted` (a person stopped it) or `skipped`
(its rollout stopped before its wave).

A running deploy is in one of two steps:

    writing   powered on with a one-time network boot; the agent writes the image
    booting   the agent said the image is written; the machine boots its disk and the
              deployed OS's first fetch of its user-data (or a phone-home) ends the deploy

A running release is `power-off` (erase none: waiting for the power queue) or `erasing` (the
agent erases the disks). `AGENT_CALLS` says in which step each call of the agent is allowed;
anything else is refused with a message that names both, as the lifecycle table does.

Standard library only: the services do the I/O, this module decides.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


class DeployKind(enum.StrEnum):
    DEPLOY = "deploy"
    RELEASE = "release"


class DeployState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    SKIPPED = "skipped"


OPEN_STATES: Final = frozenset({DeployState.QUEUED, DeployState.RUNNING})


class DeployStep(enum.StrEnum):
    NONE = ""  # queued, or a release that needed no work
    WRITING = "writing"
    BOOTING = "booting"
    POWER_OFF = "power-off"
    ERASING = "erasing"


class EraseMode(enum.StrEnum):
    NONE = "none"
    QUICK = "quick"  # signatures: the first and last MiB of the disk and of each partition
    FULL = "full"  # every byte zeroed, with progress
    SECURE = "secure"  # the drive's own erase when it has one, else `full` (and it says so)


# What the agent reports in deploy/progress, in the order it does them.
AGENT_STEPS: Final = ("download", "write", "verify", "grow", "seed")

MAX_USER_DATA: Final = 256 * 1024  # cloud-init's own sources allow less (EC2: 16 KiB)
MAX_SSH_KEYS: Final = 64
MAX_SSH_KEY: Final = 16 * 1024
MAX_ERROR: Final = 2000
_KEY_LINE = r"(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)[A-Za-z0-9@.+-]+ [A-Za-z0-9+/=]+( [^\n]*)?"
_SSH_KEY = re.compile(_KEY_LINE)
# One item of the API's `ssh_keys` (a blank one is skipped), as a JSON Schema pattern.
SSH_KEY_PATTERN: Final = rf"^\s*({_KEY_LINE})?\s*$"
_DISK = re.compile(r"[a-z][a-z0-9]{0,31}")  # a kernel name: vda, sda, nvme0n1
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    machine_id: int
    system_id: str
    kind: DeployKind
    state: DeployState
    step: DeployStep
    requested_by: str
    created_at: float
    rollout_id: int | None = None
    wave: int = 0
    allocated_here: bool = False  # the request allocated a Ready machine (undone if skipped)
    image_id: str = ""
    image_name: str = ""
    image_sha256: str = ""  # the disk file, compressed, as stored and served
    image_size: int = 0
    compression: str = ""
    user_data: str = ""
    ssh_keys: tuple[str, ...] = ()
    hostname: str = ""
    disk: str = ""  # asked for (empty: the agent picks), then the one written
    boot_mac: str = ""
    erase: EraseMode = EraseMode.NONE
    agent_step: str = ""
    done: int = 0
    total: int = 0
    result: Mapping[str, Any] | None = None
    error: str = ""
    failed_step: str = ""
    power_op_id: int | None = None
    comment: str = ""
    # The deployed OS's seed is at /cloud-init/<system_id>/<seed_secret>/ (docs/security.md).
    seed_secret: str = ""
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def holder(self) -> str:
        """Who holds the image in the cache while this deploy needs it."""
        return f"machine:{self.system_id}"


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """What a person asks a deploy to do; `image` is a name or an id (prefix)."""

    actor: str
    image: str
    user_data: str = ""
    ssh_keys: tuple[str, ...] = ()
    hostname: str | None = None
    disk: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    actor: str
    erase: EraseMode = EraseMode.NONE
    comment: str = ""
    # The actor is an admin, who may release machines allocated to others (`ownership`).
    admin: bool = False


class DeployInputError(ValueError):
    """A field of a deploy request (or of an agent's report) is not usable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


def check_request(request: DeployRequest) -> DeployRequest:
    """The request with its fields checked; the first problem raises `DeployInputError`."""
    if not request.image.strip():
        raise DeployInputError("image", "name the image to deploy (see `edgebox images list`)")
    data = request.user_data
    if len(data.encode("utf-8", "surrogatepass")) > MAX_USER_DATA:
        raise DeployInputError("user_data", f"larger than {MAX_USER_DATA} bytes")
    if "\x00" in data:
        raise DeployInputError("user_data", "contains a NUL byte; user-data is text")
    if len(request.ssh_keys) > MAX_SSH_KEYS:
        raise DeployInputError("ssh_keys", f"at most {MAX_SSH_KEYS} keys")
    keys = tuple(k.strip() for k in request.ssh_keys if k.strip())
    for index, key in enumerate(keys):
        if len(key) > MAX_SSH_KEY or "\n" in key or not _SSH_KEY.fullmatch(key):
            raise DeployInputError(
                f"ssh_keys[{index}]",
                "expected one public key line such as 'ssh-ed25519 AAAA… user@host'",
            )
    if request.disk and not _DISK.fullmatch(request.disk):
        raise DeployInputError(
            "disk", f"expected a kernel disk name such as sda, got {request.disk!r}"
        )
    return DeployRequest(
        request.actor, request.image.strip(), data, keys, request.hostname, request.disk,
        request.comment,
    )  # fmt: skip


def parse_erase(text: str | None) -> EraseMode:
    if text is None or text == "":
        return EraseMode.NONE
    try:
        return EraseMode(text)
    except ValueError:
        known = ", ".join(m.value for m in EraseMode)
        raise DeployInputError("erase", f"expected one of {known}, got {text!r}") from None


# -- the agent's calls ------------------------------------------------------------------------


class AgentCallRefused(Exception):
    """A call the deployment's step does not allow (a 409 to the agent)."""


# Which step each call of the agent is allowed in. `done` in `booting` is a repeat of the
# done that moved it there (a lost answer, retried): it gets the same answer again.
AGENT_CALLS: Final[Mapping[str, frozenset[DeployStep]]] = {
    "deploy/plan": frozenset({DeployStep.WRITING}),
    "deploy/progress": frozenset({DeployStep.WRITING}),
    "deploy/log": frozenset({DeployStep.WRITING, DeployStep.BOOTING}),
    "deploy/done": frozenset({DeployStep.WRITING, DeployStep.BOOTING}),
    "erase/plan": frozenset({DeployStep.ERASING}),
    "erase/progress": frozenset({DeployStep.ERASING}),
    "erase/log": frozenset({DeployStep.ERASING}),
    "erase/done": frozenset({DeployStep.ERASING}),
}


def check_agent_call(call: str, deployment: Deployment | None) -> Deployment:
    """The running deployment that `call` acts on, or `AgentCallRefused` saying why not."""
    if deployment is None or deployment.state is not DeployState.RUNNING:
        what = "deploying" if call.startswith("deploy/") else "erasing disks"
        raise AgentCallRefused(f"{call}: this machine is not {what} now")
    allowed = AGENT_CALLS[call]
    if deployment.step not in allowed:
        steps = ", ".join(sorted(s.value for s in allowed))
        raise AgentCallRefused(
            f"{call}: not allowed in step {deployment.step.value or 'none'} (only in: {steps})"
        )
    return deployment


def render_text(fields: Sequence[tuple[str, str]]) -> str:
    """`KEY=value` lines, as the agent reads them (`while IFS== read -r key value`)."""
    lines = []
    for key, value in fields:
        if "\n" in value or "\r" in value or "=" in key:
            raise ValueError(f"{key}: a value for the agent cannot hold a line break")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def seed_url(deployment: Deployment, base_url: str) -> str:
    return f"{base_url}/cloud-init/{deployment.system_id}/{deployment.seed_secret}/"


def deploy_plan(deployment: Deployment, base_url: str) -> str:
    return render_text(
        [
            ("image_url", f"{base_url}/images/{deployment.image_sha256}"),
            ("sha256", deployment.image_sha256),
            ("size", str(deployment.image_size)),
            ("compression", deployment.compression),
            ("kind", "raw"),
            ("disk", deployment.disk),
            ("seed_url", seed_url(deployment, base_url)),
            ("system_id", deployment.system_id),
            ("hostname", deployment.hostname),
        ]
    )


def erase_plan(deployment: Deployment) -> str:
    return render_text([("mode", deployment.erase.value), ("disks", "")])


@dataclass(frozen=True, slots=True)
class Progress:
    step: str
    done: int
    total: int


def parse_progress(body: Mapping[str, Any], *, erase: bool) -> Progress:
    key = "disk" if erase else "step"
    step = body.get(key)
    if erase:
        if not isinstance(step, str) or not _DISK.fullmatch(step):
            raise DeployInputError("disk", f"expected a kernel disk name, got {step!r}")
    elif step not in AGENT_STEPS:
        raise DeployInputError("step", f"expected one of {', '.join(AGENT_STEPS)}, got {step!r}")
    done, total = _count(body, "done"), _count(body, "total")
    return Progress(str(step), done, total)


def _count(body: Mapping[str, Any], field: str) -> int:
    value = body.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DeployInputError(field, f"expected a count of bytes, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """What the agent's `done` means: success (with what it wrote), or the failed step."""

    ok: bool
    step: str = ""
    error: str = ""
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KnownDisk:
    """A disk of the machine's inventory: its kernel name, and its serial ("" unknown). Names
    may change between boots (sda and sdb swap); a serial does not, so it is matched first."""

    name: str
    serial: str = ""


def _serials(body: Mapping[str, Any]) -> dict[str, str]:
    serials = body.get("serials", {})
    if not isinstance(serials, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in serials.items()
    ):
        raise DeployInputError("serials", 'expected {"<disk>": "<its serial>", …}')
    return {k: v.strip() for k, v in serials.items()}


def _is_known(name: str, serial: str, disk: KnownDisk) -> bool:
    return serial == disk.serial if disk.serial else name == disk.name


def judge_deploy_done(
    deployment: Deployment, body: Mapping[str, Any], disks: Sequence[KnownDisk] = ()
) -> AgentOutcome:
    """A success must name the disk and the SHA-256 of what the agent read, and that hash must
    be the image's: a mismatch is a failed verify, whatever the agent thought. The disk must
    be one of the inventory's (`disks`; by serial where the inventory has one)."""
    ok = body.get("ok")
    if not isinstance(ok, bool):
        raise DeployInputError("ok", "expected true or false")
    if not ok:
        return _failure(body, "step")
    disk, digest = body.get("disk"), body.get("sha256")
    if not isinstance(disk, str) or not _DISK.fullmatch(disk):
        raise DeployInputError(
            "disk", f"expected the kernel name of the disk written, got {disk!r}"
        )
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise DeployInputError("sha256", "expected 64 lowercase hex digits")
    serial = body.get("serial", "")
    if not isinstance(serial, str):
        raise DeployInputError("serial", "expected the written disk's serial as text")
    if digest != deployment.image_sha256:
        return AgentOutcome(
            False,
            "verify",
            f"the image read from edgebox hashed to {digest[:16]}…, not "
            f"{deployment.image_sha256[:16]}… (corrupted on the way)",
        )
    if disks and not any(_is_known(disk, serial.strip(), d) for d in disks):
        known = ", ".join(f"{d.name} ({d.serial or 'no serial'})" for d in disks)
        return AgentOutcome(
            False, "write", f"the agent wrote {disk} (serial {serial or 'none'}), which is "
            f"not a disk of this machine's inventory: {known}"
        )  # fmt: skip
    return AgentOutcome(True, result={"disk": disk, "sha256": digest})


def judge_erase_done(body: Mapping[str, Any], disks: Sequence[KnownDisk] = ()) -> AgentOutcome:
    """A success must name how each disk was erased, and cover every disk of the inventory
    (`disks`; by serial where the inventory has one): an empty or partial report is a failed
    erase, whatever the agent thought — the next tenant would get the previous one's data."""
    ok = body.get("ok")
    if not isinstance(ok, bool):
        raise DeployInputError("ok", "expected true or false")
    if not ok:
        return _failure(body, "disk")
    erased = body.get("disks")
    if not isinstance(erased, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in erased.items()
    ):
        raise DeployInputError("disks", 'expected {"<disk>": "<how it was erased>", …}')
    serials = _serials(body)
    if not erased:
        return AgentOutcome(False, "", "the agent reported no disk erased")
    missing = [
        d for d in disks
        if not any(_is_known(name, serials.get(name, ""), d) for name in erased)
    ]  # fmt: skip
    if missing:
        names = ", ".join(f"{d.name} (serial {d.serial})" if d.serial else d.name for d in missing)
        return AgentOutcome(False, missing[0].name, f"not reported erased: {names}")
    return AgentOutcome(True, result={"disks": dict(erased)})


def _failure(body: Mapping[str, Any], where: str) -> AgentOutcome:
    place, error = body.get(where), body.get("error")
    step = place if isinstance(place, str) and len(place) <= 64 else ""
    text = error if isinstance(error, str) and error.strip() else "the agent gave no reason"
    return AgentOutcome(False, step, text[:MAX_ERROR])


def ssh_keys_json(keys: Sequence[str]) -> str:
    return json.dumps(list(keys))
