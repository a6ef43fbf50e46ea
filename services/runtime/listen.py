"""Listening sockets for the HTTP services.

Created with ``IPPROTO_TCP`` explicitly: asyncio turns on TCP_NODELAY only for sockets whose ``proto`` says
TCP, and without it every small HTTP answer waits ~40 ms for the peer's delayed ACK (Nagle).
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A bound, listening TCP socket (``port`` 0: any free port); raises ``OSError`` if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
