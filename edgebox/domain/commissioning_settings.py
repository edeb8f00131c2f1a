"""The `commissioning:` section of the configuration: default tests and the watchdog's limits.

The dataclass follows the conventions of `edgebox.domain.settings` (frozen, defaults,
`min`/`max` metadata read by its generic walker).

    commissioning:
      tests: [gpu-presence]     # testing scripts `commission` runs unless told otherwise
      timeout: 1800             # fail a commissioning/testing machine silent this long (s)
      grace: 300                # beyond a running script's own timeout (s)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CommissioningSettings"]


@dataclass(frozen=True, slots=True)
class CommissioningSettings:
    # Testing scripts that `commission` runs after the commissioning scripts when the request
    # names none. (`test` with none named runs every built-in test that is not destructive.)
    tests: tuple[str, ...] = ()
    # A machine in Commissioning or Testing whose agent has not called for this long (from
    # the start of the run, then from its last call) is failed by the watchdog, in seconds.
    timeout: int = field(default=1800, metadata={"min": 60, "max": 7 * 86400})
    # While scripts run, the silence allowed is the longest one's timeout plus this, if that
    # is longer than `timeout` (a script may run its whole timeout without its agent calling).
    grace: int = field(default=300, metadata={"min": 0, "max": 86400})
