"""The webhook address policy against every spelling of every address (hypothesis): the API fuzz sends all its
webhooks to the test's own receiver (nothing generated may leave this machine), so the policy that keeps
webhooks off the local network gets its own generated inputs here.

An address is generated (any IPv4, any IPv6, IPv4 inside IPv6), then spelled the ways a resolver reads it:
dotted decimal, one number, hex, octal, dotted hex, the short forms ``a.b`` and ``a.b.c``, IPv6 compressed or
in full, IPv4-mapped. The policy must refuse it exactly when the address is not public, name the address it
found, and never connect: only numeric hosts are generated, which the system resolver reads without a lookup,
and a URL the policy lets through is never sent to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flagstream.services.webhooks import AddressPolicy, address_problem, url_problem

SEED = int(os.environ.get("FLAGSTREAM_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
EXAMPLES = int(os.environ.get("FLAGSTREAM_FUZZ_EXAMPLES") or 8) * 50


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The oracle, from the standard library's tables (not the policy's code): global, neither multicast nor
    reserved; an IPv6 address that carries an IPv4 one (mapped, 6to4, Teredo, NAT64, IPv4-compatible) is that one."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and (ip in ipaddress.ip_network("64:ff9b::/96") or 1 < int(ip) < 2**32):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return public(inner)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    n = int(ip)
    a, b = ip.packed[:2]
    return [
        str(ip),
        str(n),
        hex(n),
        ".".join(f"0{x:o}" for x in ip.packed),
        ".".join(hex(x) for x in ip.packed),
        f"{a}.{n & 0xFFFFFF}",
        f"{a}.{b}.{n & 0xFFFF}",
        f"[::ffff:{ip}]",
    ]


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.sampled_from(["127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/4", "0.0.0.0/8"])
    .flatmap(lambda net: st.integers(0, ipaddress.ip_network(net).num_addresses - 1).map(
        lambda i, net=net: ipaddress.ip_network(net)[i]
    )),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.sampled_from(["::/96", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "fe80::/10", "fc00::/7", "ff00::/8"])
    .flatmap(lambda net: st.integers(0, min(ipaddress.ip_network(net).num_addresses - 1, 2**64)).map(
        lambda i, net=net: ipaddress.ip_network(net)[i]
    )),
)  # fmt: skip


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ip=addresses, port=st.integers(1, 65535), https=st.booleans())
def test_every_spelling_of_a_non_public_address_is_refused_and_of_a_public_one_allowed(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, https: bool
) -> None:
    hosts = spellings(ip) if isinstance(ip, ipaddress.IPv4Address) else [f"[{ip}]", f"[{ip.exploded}]"]
    for host in hosts:
        url = f"{'https' if https else 'http'}://{host}:{port}/hook"
        problem = asyncio.run(address_problem(url, AddressPolicy()))
        if public(ip):
            assert problem is None, (url, problem)
        else:
            assert problem is not None, url
            assert problem.startswith("refused: "), problem
            shown = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
            assert str(shown) in problem or host.strip("[]") in problem, problem


urls = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
        st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x17F), max_size=25),
        st.sampled_from(["", ":", ":0", ":80", ":65536", ":-1", ":x", ":99999999999999999999"]),
        st.text(max_size=20),
    ),
)


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(url=urls)
def test_any_text_as_a_webhook_url_is_judged_never_a_crash(url: str) -> None:
    """What the API fuzz never sends (it points every webhook at its receiver): any text as a URL gets an answer
    (a reason, or None for one that can be sent to), never an exception, which would be a 500."""
    problem = url_problem(url)
    assert problem is None or problem.startswith("url "), problem


def test_the_seed_is_printed() -> None:
    print(f"\nwebhook address fuzz seed {SEED} (FLAGSTREAM_FUZZ_SEED={SEED} repeats it)")
