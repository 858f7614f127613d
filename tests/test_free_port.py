"""The test stacks' ports (tests/support/processes.py `free_port`): never one the kernel
may hand to another socket between the check and the server's bind."""

from __future__ import annotations

import socket

from tests.support.processes import ephemeral_port_range, free_port


def test_free_ports_lie_below_the_kernels_ephemeral_range_and_bind_on_every_interface() -> None:
    low, _ = ephemeral_port_range()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        port = free_port(kind)
        assert port < low
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("0.0.0.0", port))


def test_free_port_never_gives_the_same_port_twice() -> None:
    ports = [free_port() for _ in range(300)]  # none bound in between, as in a stack's set-up
    assert len(set(ports)) == len(ports)
