"""Who may end someone's use of a machine: its owner (the user it is allocated to) or an admin.

An allocated or deployed machine is someone's: releasing it (which erases or powers it off)
or deleting it takes it from them. Any operator may act on machines, but only the owner or an
admin may do those two; anyone else gets an error that names the owner, so they know whom to
ask. A machine without an owner (New, Ready, ...) is nobody's and anyone who may operate may.
"""

from __future__ import annotations

from edgebox.domain.errors import Forbidden
from edgebox.domain.models import Machine


def check_owner(machine: Machine, actor: str, *, admin: bool, doing: str) -> None:
    """Raise Forbidden when `machine` belongs to another user than `actor`, who is no admin.
    `doing` is the action in words ("release", "delete")."""
    if machine.owner is None or machine.owner == actor or admin:
        return
    raise Forbidden(
        f"machine {machine.hostname} is allocated to {machine.owner}; only {machine.owner} or"
        f" an admin may {doing} it (ask them, or an admin)"
    )
