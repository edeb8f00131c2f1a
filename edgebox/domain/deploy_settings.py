"""The `deploy:` section of the configuration: the watchdog of deploys and releases.

The dataclass follows the conventions of `edgebox.domain.settings` (frozen, defaults,
`min`/`max` metadata read by its generic walker).

    deploy:
      timeout: 1800      # fail a deploying/releasing/erasing machine silent this long (s)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DeploySettings"]


@dataclass(frozen=True, slots=True)
class DeploySettings:
    # A machine that is Deploying, Releasing or Disk erasing and has given no sign of life for
    # this long is failed (Failed deployment, Failed releasing, Failed disk erasing), in
    # seconds. Every call of its agent is a sign of life; after the image is written, the
    # deployed OS has this long to fetch its user-data.
    timeout: int = field(default=1800, metadata={"min": 30, "max": 7 * 86400})
