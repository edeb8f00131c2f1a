"""The machine's side of deploys and erases (docs/deploy-contract.md §2), and the NoCloud-net
documents its deployed OS reads (§3).

An agent, authenticated by its per-boot token, asks for its plan, reports progress (kept in
memory; a new step is written), uploads its log (the last 4 MiB kept) and reports done. Each
call finds its deployment in the tracker, and the deployment's step decides whether the call
is allowed (`domain.deployment.AGENT_CALLS`). The cloud-init documents need no token (the URL
holds the system_id, as in MAAS's metadata service): they are rendered from the deploy request
of a machine that is Deploying or Deployed, and 404 for any other.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from edgebox.domain import cloud_init
from edgebox.domain.deployment import (
    AgentCallRefused,
    DeployInputError,
    DeployKind,
    Deployment,
    check_agent_call,
    deploy_plan,
    erase_plan,
    judge_deploy_done,
    judge_erase_done,
    parse_progress,
    seed_url,
)
from edgebox.services.boot_service import AgentAuthError, AgentCall, AgentInputError
from edgebox.services.clock import Clock
from edgebox.services.deploy_service import DeployService
from edgebox.services.release_service import ReleaseService
from edgebox.storage.deploy_store import DeployStore

log = logging.getLogger(__name__)
T = TypeVar("T")

LOG_LIMIT: Final = 4 * 1024 * 1024
PURPOSE_OF_KIND: Final = {DeployKind.DEPLOY: "deploy", DeployKind.RELEASE: "erase"}
SEED_GRACE: Final = 120.0  # seconds the user-data stays readable after the OS first read it


class DeployAgent:
    def __init__(
        self, deploys: DeployService, releases: ReleaseService, store: DeployStore, clock: Clock
    ) -> None:
        self._clock = clock
        self._deploys = deploys
        self._releases = releases
        self._store = store
        self._tracker = deploys.tracker

    def serves(self, call: AgentCall) -> bool:
        return call.token.purpose in PURPOSE_OF_KIND.values()

    def _deployment(self, call: AgentCall, name: str) -> Deployment:
        """The running deployment the call acts on; the call counts as a sign of life."""
        kind = DeployKind.DEPLOY if name.startswith("deploy/") else DeployKind.RELEASE
        machine_id = call.token.machine_id
        if machine_id is None or call.token.purpose != PURPOSE_OF_KIND[kind]:
            raise AgentAuthError(
                f"this boot token (purpose {call.token.purpose}) is not for "
                f"{PURPOSE_OF_KIND[kind]} of a known machine",
                forbidden=True,
            )
        self._tracker.touch(machine_id)
        active = self._tracker.of_machine(machine_id)
        found = active.deployment if active and active.deployment.kind is kind else None
        return check_agent_call(name, found)

    # -- deploy ----------------------------------------------------------------------------

    async def deploy_plan(self, call: AgentCall, base_url: str) -> str:
        return deploy_plan(self._deployment(call, "deploy/plan"), base_url)

    async def deploy_progress(self, call: AgentCall, body: Mapping[str, Any]) -> None:
        d = self._deployment(call, "deploy/progress")
        await self._progress(d, body, erase=False)

    async def deploy_log(self, call: AgentCall, data: bytes, size: int) -> None:
        d = self._deployment(call, "deploy/log")
        await self._store.put_log(d.id, data[-LOG_LIMIT:], size)

    async def deploy_done(self, call: AgentCall, body: Mapping[str, Any]) -> dict[str, str]:
        d = self._deployment(call, "deploy/done")
        disks = await self._store.known_disks(d.machine_id)
        outcome = _judged(lambda: judge_deploy_done(d, body, disks))
        if outcome.ok:
            return {"action": await self._deploys.outcomes.written(d, outcome)}
        log.warning("deploy failed system_id=%s step=%s: %s", d.system_id, outcome.step,
                    outcome.error)  # fmt: skip
        await self._deploys.outcomes.failed(d, outcome)
        return {"action": "poweroff"}

    # -- erase -----------------------------------------------------------------------------

    async def erase_plan(self, call: AgentCall) -> str:
        return erase_plan(self._deployment(call, "erase/plan"))

    async def erase_progress(self, call: AgentCall, body: Mapping[str, Any]) -> None:
        d = self._deployment(call, "erase/progress")
        await self._progress(d, body, erase=True)

    async def erase_log(self, call: AgentCall, data: bytes, size: int) -> None:
        d = self._deployment(call, "erase/log")
        await self._store.put_log(d.id, data[-LOG_LIMIT:], size)

    async def erase_done(self, call: AgentCall, body: Mapping[str, Any]) -> dict[str, str]:
        d = self._deployment(call, "erase/done")
        disks = await self._store.known_disks(d.machine_id)
        outcome = _judged(lambda: judge_erase_done(body, disks))
        await self._releases.erased(d, outcome)
        return {"action": "poweroff"}

    async def _progress(self, d: Deployment, body: Mapping[str, Any], *, erase: bool) -> None:
        progress = _judged(lambda: parse_progress(body, erase=erase))
        before = self._tracker.report(d.machine_id, progress)
        if before is None or before.step != progress.step:
            await self._deploys.outcomes.progressed(d, progress.step, progress.done, progress.total)

    # -- cloud-init: the deploy's seed secret, no token -----------------------------------------

    async def document(self, system_id: str, secret: str, name: str, base_url: str) -> str | None:
        """A NoCloud-net document for the machine; None: wrong secret, or it is neither
        Deploying nor Deployed. The first user-data fetch after the image was written marks it
        Deployed; the user-data itself is given only until then and SEED_GRACE after."""
        d = await self._deployed_or_deploying(system_id, secret)
        if d is None:
            return None
        if name == "meta-data":
            return cloud_init.meta_data(d.system_id, d.hostname, d.ssh_keys)
        if name == "user-data":
            await self._deploys.outcomes.reached(system_id, "fetched its user-data")
            return cloud_init.user_data(d.user_data if await self._seed_open(d) else "")
        if name == "vendor-data":
            return cloud_init.vendor_data(f"{seed_url(d, base_url)}phone-home")
        return cloud_init.network_config(d.boot_mac)

    async def phone_home(self, system_id: str, secret: str) -> bool:
        d = await self._deployed_or_deploying(system_id, secret)
        if d is None:
            return False
        await self._deploys.outcomes.reached(system_id, "phoned home")
        return True

    async def _seed_open(self, d: Deployment) -> bool:
        """Whether the user-data may still go out: while the deployed OS boots, and for
        SEED_GRACE seconds after it first fetched it (cloud-init reads it more than once in
        one boot); never later."""
        current = await self._store.deployed(d.system_id)
        if current is None or current.id != d.id:
            return True  # still Deploying (the OS is booting)
        finished = current.finished_at or 0.0
        return self._clock.now() - finished <= SEED_GRACE

    async def _deployed_or_deploying(self, system_id: str, secret: str) -> Deployment | None:
        active = self._tracker.of_system(system_id)
        if active is not None and active.deployment.kind is DeployKind.DEPLOY:
            found: Deployment | None = active.deployment
        else:
            found = await self._store.deployed(system_id)
        if found is None:
            return None
        # Compared in constant time. A deploy made before seeds had secrets has none, and no
        # seed: its OS keeps what cloud-init cached at its first boot.
        if not found.seed_secret or not hmac.compare_digest(secret, found.seed_secret):
            return None
        return found


def _judged(judge: Callable[[], T]) -> T:
    try:
        return judge()
    except DeployInputError as exc:
        raise AgentInputError(str(exc)) from None


__all__ = ["AgentCallRefused", "DeployAgent"]
