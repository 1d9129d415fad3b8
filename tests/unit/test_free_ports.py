"""Ports for a Kafka node's two listeners: never the same one twice (wo/embedded_broker.py)."""

from __future__ import annotations

import socket

from workorder_pipeline.wo.embedded_broker import HOST, free_ports


def test_ports_picked_together_are_distinct_and_free() -> None:
    for _ in range(50):  # one at a time, the OS handed out a port just released twice (CI)
        ports = free_ports(6)
        assert len(set(ports)) == 6
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, port))
