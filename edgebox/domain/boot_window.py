"""Who may have a known machine's agent token: the boot window rule (docs/security.md).

Anyone on the provisioning network can ask for `/boot/ipxe?mac=<any MAC>`. A token for a
known machine is therefore handed out only while edgebox itself is working on that machine in
a status that boots the ephemeral environment (New, Commissioning, Testing, Deploying, Disk
erasing, Rescue mode): a *window*, which opens when the machine enters that status and is
claimed once, by one network address. In server mode that address must be one edgebox leased to
the MAC; where edgebox leased the MAC nothing (proxyDHCP, relays through another server) the
first claim binds it. The same address may claim again (the machine rebooted within the same
step); any other address gets nothing, and edgebox says so at error level, naming both.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass


class ClaimOutcome(enum.Enum):
    GRANTED = "granted"  # first claim of this window
    RENEWED = "renewed"  # the same address again (a reboot within the same step)
    WRONG_SOURCE = "wrong_source"  # not an address edgebox leased to the MAC
    CLAIMED = "claimed"  # another address claimed this window first


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    source: str  # the address asking now
    holder: str = ""  # CLAIMED: who claimed first; WRONG_SOURCE: the leased address(es)

    @property
    def granted(self) -> bool:
        return self.outcome in (ClaimOutcome.GRANTED, ClaimOutcome.RENEWED)

    def refusal(self, mac: str) -> str:
        """Why nothing was handed out, in words for the event log."""
        if self.outcome is ClaimOutcome.WRONG_SOURCE:
            return (
                f"boot token for {mac} asked from {self.source}, but edgebox leased {mac} "
                f"{self.holder}: refused (another host asking for this machine's identity?)"
            )
        return (
            f"boot token for {mac} asked from {self.source}, but {self.holder} already "
            f"claimed this boot window: refused; if {self.source} is the real machine, "
            f"{self.holder} may be impersonating it"
        )


def decide_claim(claimed_from: str | None, source: str, leased: Set[str]) -> Claim:
    """`claimed_from`: who claimed the current window (None: nobody yet); `leased`: the
    addresses edgebox leased to the MAC and that are still held (empty: none known)."""
    if leased and source not in leased:
        return Claim(ClaimOutcome.WRONG_SOURCE, source, "only " + ", ".join(sorted(leased)))
    if claimed_from is None:
        return Claim(ClaimOutcome.GRANTED, source)
    if claimed_from == source:
        return Claim(ClaimOutcome.RENEWED, source)
    return Claim(ClaimOutcome.CLAIMED, source, claimed_from)
