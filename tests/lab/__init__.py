"""The test lab: network namespaces, real DHCP clients and peers, all torn down after use.

See /work/shared/design/LAB.md for the measured facts this library is built on.
"""

from tests.lab.netns import (
    Lab,
    LabError,
    RelayTopology,
    TwoHosts,
    list_namespaces,
    unique_prefix,
)
from tests.lab.processes import (
    LineWatcher,
    require_root_and_tools,
    skip_unless_lab,
    stop_process,
    which,
)

__all__ = [
    "Lab",
    "LabError",
    "LineWatcher",
    "RelayTopology",
    "TwoHosts",
    "list_namespaces",
    "require_root_and_tools",
    "skip_unless_lab",
    "stop_process",
    "unique_prefix",
    "which",
]
