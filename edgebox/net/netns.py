"""Opening sockets inside another network namespace, from a process that stays outside it.

A socket belongs to the namespace it was created in, not to the process (LAB.md). So the lab
and the tests can keep edgebox's API on the host's 127.0.0.1 while its DHCP, TFTP and boot
sockets live in the lab's namespace: a short-lived thread enters the namespace with setns(2)
(Python 3.11 has no os.setns; libc's is called through ctypes), creates the socket, and ends.
setns changes only the calling thread, so the rest of the process never leaves the host's
namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


class NetnsError(OSError):
    """The namespace could not be entered."""


def enter_netns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd` (setns(2))."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"setns failed: {os.strerror(err)}")


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a thread inside network namespace `name` ("" runs it here) and return its
    result. The thread ends afterwards, so nothing else ever runs in that namespace."""
    if not name:
        return fn()
    path = os.path.join(NETNS_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NetnsError(2, f"no network namespace {name!r} ({path} does not exist)") from None
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            enter_netns(fd)
            result.append(fn())
        except BaseException as exc:  # handed back to the caller below
            error.append(exc)

    try:
        thread = threading.Thread(target=target, name=f"netns-{name}")
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if error:
        raise error[0]
    return result[0]
