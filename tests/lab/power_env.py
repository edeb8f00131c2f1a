"""The driver environment for tests against BMC simulators on 127.0.0.1 (ipmi_sim, our small
Redfish BMC, sushy-tools, webhook receivers).

Power drivers refuse loopback targets by default (edgebox/domain/power_targets.py): a BMC
address of 127.0.0.1 would let whoever sets a BMC reach edgebox's own host. These tests do
what a lab's edgebox.yaml does, `power: {allow_targets: [127.0.0.0/8]}`: the allow-list opens
loopback for them.
"""

from __future__ import annotations

from edgebox.domain.power_targets import parse_target_policy
from edgebox.drivers.power.base import DriverEnv
from edgebox.drivers.power.targets import TargetGuard
from edgebox.drivers.power.worker_slots import WorkerSlots

LOOPBACK_ALLOWED = ("127.0.0.0/8",)


def loopback_env(workers: int = 32) -> DriverEnv:
    """Drivers that may reach BMC simulators on 127.0.0.1 (the allow-list opens loopback)."""
    return DriverEnv(TargetGuard(parse_target_policy(LOOPBACK_ALLOWED)), WorkerSlots(workers))
