"""The IPMI driver's words: how it names a BMC, and its failures as fatal or retryable errors.

Wrong user, password or k_g, a refused privilege level, a cipher suite or a command the BMC
lacks are fatal (a person must change something); no answer, a busy BMC and anything else are
retryable. Every message names the BMC as host[:port] and says what was attempted.
"""

from __future__ import annotations

from edgebox.drivers.power.base import FatalPowerError, PowerError, RetryablePowerError
from edgebox.drivers.power.ipmi_protocol import Failure, SessionSettings

DEFAULT_PORT = 623


def bmc_name(host: str, port: int) -> str:
    """How messages name the BMC: the host, and the port when it is not IPMI's 623."""
    if port == DEFAULT_PORT:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


# Retrying cannot help with these: a person must fix the settings or the BMC.
FATAL_FAILURES = frozenset(
    {Failure.CREDENTIALS, Failure.PRIVILEGE, Failure.CIPHER_SUITE, Failure.UNSUPPORTED}
)


def power_error(
    address: str,
    failure: Failure,
    detail: str,
    *,
    what: str,
    settings: SessionSettings,
    privilege: str,
    elapsed: float,
) -> PowerError:
    """The PowerError for a failed call: whose fault, whether to retry, in one sentence."""
    said = f" ({detail})" if detail else ""
    user = settings.username
    if failure is Failure.CREDENTIALS:
        key = " or the BMC key (k_g)" if settings.k_g or "kg" in detail.lower() else ""
        message = f"rejected the credentials for user {user!r}{key}{said}"
    elif failure is Failure.PRIVILEGE:
        message = f"refused {what} at privilege level {privilege} for user {user!r}{said}"
    elif failure is Failure.CIPHER_SUITE:
        message = (
            f"does not accept IPMI cipher suite {settings.cipher_suite}{said}; set the"
            " cipher_suite option to one it offers"
        )
    elif failure is Failure.UNSUPPORTED:
        message = f"does not support {what}{said}"
    elif failure is Failure.NO_ANSWER:
        said = "" if detail.lower() in ("", "timeout") else said
        message = f"no answer within {seconds(elapsed)} s{said}"
    elif failure is Failure.BUSY:
        message = f"is busy and refused {what} for now{said}"
    else:
        message = f"{what} failed{said}"
    if failure in FATAL_FAILURES:
        return FatalPowerError(address, message)
    return RetryablePowerError(address, message)
