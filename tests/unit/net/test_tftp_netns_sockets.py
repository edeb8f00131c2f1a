"""NetnsSocketFactory: one thread inside a namespace, creating sockets there on request."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from edgebox.net.netns import NetnsError
from edgebox.net.netns_sockets import NetnsSocketFactory
from tests.lab import Lab, skip_unless_lab


def test_without_a_namespace_functions_run_on_the_callers_thread() -> None:
    factory = NetnsSocketFactory("")
    factory.start()
    assert factory.call(threading.get_ident) == threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        factory.call(lambda: 1 // 0)
    factory.close()
    with pytest.raises(NetnsError, match="closed"):
        factory.call(lambda: 1)


def test_a_missing_namespace_is_a_clear_error() -> None:
    factory = NetnsSocketFactory("eb-no-such-namespace-xyz")
    with pytest.raises(NetnsError, match="no network namespace 'eb-no-such-namespace-xyz'"):
        factory.start()
    factory.close()


def _net_ns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


@pytest.mark.root
def test_sockets_are_created_inside_the_namespace_by_one_thread() -> None:
    skip_unless_lab()
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.40.1/24", client_addr="10.231.40.2/24")
        factory = NetnsSocketFactory(net.server_ns)
        factory.start()
        try:
            here = _net_ns()
            inside = factory.call(_net_ns)
            assert inside != here and _net_ns() == here  # only the factory's thread moved
            threads = {factory.call(threading.get_ident) for _ in range(5)}
            assert len(threads) == 1 and threading.get_ident() not in threads

            def bound() -> socket.socket:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((net.server_ip, 0))  # an address that exists only in the namespace
                return sock

            sock = factory.call(bound)
            here_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock, here_sock, pytest.raises(OSError):  # and not here
                here_sock.bind((net.server_ip, 0))
        finally:
            factory.close()
        assert not any(t.name.startswith("netns-sockets-") for t in threading.enumerate())


@pytest.mark.root
async def test_submit_can_be_awaited_from_the_event_loop() -> None:
    skip_unless_lab()
    with Lab() as lab:
        ns = lab.netns("one")
        factory = NetnsSocketFactory(ns)
        await asyncio.to_thread(factory.start)
        try:
            names = await asyncio.wrap_future(factory.submit(socket.if_nameindex))
            assert [name for _, name in names] == ["lo"]
        finally:
            factory.close()
