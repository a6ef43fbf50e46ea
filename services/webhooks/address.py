"""Where a webhook may send: no request of the admin service reaches the machine it runs on or the network it
sits in unless the operator said so (server-side request forgery).

A webhook's URL is chosen by whoever creates it, and the admin service sends to it from inside your network. By
default, an address that is loopback, private, link-local (cloud metadata: 169.254.169.254), multicast,
unspecified or otherwise not public is refused: IPv4 and IPv6, IPv4 inside IPv6 (``::ffff:127.0.0.1``, 6to4,
NAT64), and every numeric spelling the resolver reads (``2130706433``, ``127.1``, ``0x7f.1``), since the check is
made on the addresses the host name resolves to, not on the text of the URL.

The check is made when a webhook is created (``problem``) and again at every delivery, on the very address that
is connected to: ``PinnedTransport`` resolves the host once per connection, checks every address, and connects to
one it checked (the ``Host`` header and the TLS server name stay the URL's), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot switch it. No proxy from the environment is used, and
redirects are never followed (a 3xx is not a delivery).

An operator allows receivers inside the cluster with ``--webhook-allow`` (``FLAGSTREAM_WEBHOOK_ALLOW``) on
``flagstream admin`` and ``flagstream up``: a network (``10.0.0.0/8``), an address (``127.0.0.1``, ``::1``) or a
host name (``hooks.internal``: trusted with whatever its DNS answers).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "FLAGSTREAM_WEBHOOK_ALLOW"
#: How long a host name may take to resolve.
RESOLVE_TIMEOUT = 5.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
#: A host name, matched whole (``fullmatch``: ``re.match`` with a final ``$`` also takes a trailing newline).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")


class RefusedAddress(httpcore.ConnectError):
    """A delivery's host resolved to an address the policy refuses: nothing was sent."""


def _embedded(ip: IPAddress) -> IPAddress | None:
    """The IPv4 address inside an IPv6 one (mapped, 6to4, Teredo client, NAT64, IPv4-compatible), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def kind_of(ip: IPAddress) -> str | None:
    """What makes ``ip`` a refused address (``loopback``, ``private``, ...), or None for a public one. An IPv6
    address that carries an IPv4 one is what that IPv4 address is."""
    inner = _embedded(ip)
    if inner is not None:
        return kind_of(inner)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class AddressPolicy:
    """The receivers an operator allows beyond the public internet: networks and host names."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressPolicy:
        """From ``--webhook-allow`` values: each a network (CIDR), an address or a host name; ValueError naming
        the first that is none of them."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _HOST.fullmatch(name) or len(name) > 253:
                raise ValueError(f"--webhook-allow {entry!r} is not a network (10.0.0.0/8), an address or a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    @classmethod
    def from_text(cls, text: str) -> AddressPolicy:
        """From the environment variable's form: entries separated by commas or spaces."""
        return cls.parse(re.split(r"[,\s]+", text))

    def describe(self) -> str:
        allowed = sorted(str(n) for n in self.networks) + sorted(self.hosts)
        return ", ".join(allowed) if allowed else "nothing beyond public addresses"

    def host_allowed(self, host: str) -> bool:
        return _bare(host) in self.hosts

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be sent to (its kind), or None."""
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        if any(plain in network or ip in network for network in self.networks):
            return None
        return kind_of(ip)

    async def checked(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to, each allowed; ``RefusedAddress`` naming the problem if any is not
        (a name that resolves to both public and private addresses is refused whole), ``httpcore.ConnectError`` if
        it does not resolve."""
        host = _bare(host)
        addresses = await resolve(host, port)
        if self.host_allowed(host):
            return addresses
        for text in addresses:
            kind = self.refusal(ipaddress.ip_address(text))
            if kind is not None:
                raise RefusedAddress(refused_message(host, text, kind))
        return addresses


def _bare(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def refused_message(host: str, address: str, kind: str) -> str:
    """What a refusal says: the address of a numeric spelling (``127.1 is 127.0.0.1``), only the kind for a name
    (the admin's view of the DNS stays its own)."""
    try:
        ipaddress.ip_address(host.split("%")[0])
        what = f"{host} is a {kind} address"
    except ValueError:
        numeric = re.fullmatch(r"[0-9a-fA-FxX.]+", host) and any(c.isdigit() for c in host)
        what = f"{host} is {address}, a {kind} address" if numeric else f"{host} resolves to a {kind} address"
    return (
        f"refused: {what}; webhooks send to public addresses only, unless the operator allows the receiver "
        "(--webhook-allow, docs/security.md)"
    )


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (numeric forms included), as the system resolver reads it."""
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise httpcore.ConnectError(f"cannot resolve {host}: no address")
    return found


async def problem(url: str, policy: AddressPolicy) -> str | None:
    """Why a webhook may not send to ``url`` now (a refused address), or None. A name that does not resolve yet is
    not refused here: every delivery checks again."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"url has an invalid port: {url!r}"
    try:
        await policy.checked(parts.hostname, port)
    except RefusedAddress as exc:
        return str(exc)
    except httpcore.ConnectError:
        return None
    return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, to the very address it checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.policy.checked(host, port):
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("refused: webhooks do not send to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, connecting through ``_PinnedBackend`` (and never through a proxy)."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_PinnedBackend(policy)
        )


def client(policy: AddressPolicy, timeout: float) -> httpx.AsyncClient:
    """The HTTP client deliveries use: the policy kept on every connection, no proxy, no redirect followed."""
    return httpx.AsyncClient(
        transport=PinnedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--webhook-allow`` of ``flagstream admin`` and ``flagstream up``."""
    parser.add_argument(
        "--webhook-allow",
        action="append",
        default=[],
        metavar="NETWORK|ADDRESS|HOST",
        help="let webhooks send to this network (10.0.0.0/8), address or host name, which are refused by default "
        f"when not public (repeat the option; also ${ALLOW_ENV}, comma-separated)",
    )


def policy_from(args: argparse.Namespace) -> AddressPolicy:
    """The policy of ``--webhook-allow`` and ``$FLAGSTREAM_WEBHOOK_ALLOW`` together; ValueError if one is bad."""
    return AddressPolicy.parse([*args.webhook_allow, *re.split(r"[,\s]+", os.environ.get(ALLOW_ENV, ""))])
