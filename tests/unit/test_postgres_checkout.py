"""The checkout check of pooled PostgreSQL connections: a socket the server closed is seen without a round trip."""

from __future__ import annotations

import os
import resource
import socket

import pytest

from unified.store.postgres import _has_input


def test_a_closed_peer_is_seen_at_any_descriptor_number() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"this process may open only {hard} files; the test needs descriptors above 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # beyond select()'s FD_SETSIZE of 1024
    ours, server = socket.socketpair()
    try:
        assert ours.fileno() > 1024
        assert not _has_input(ours.fileno()), "an idle connection has nothing to read"
        server.close()  # as a restarted server or a terminated session does
        assert _has_input(ours.fileno())
    finally:
        ours.close()
        for fd in padding:
            os.close(fd)
