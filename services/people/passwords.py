"""Passwords of local users: Argon2id (``argon2-cffi``), hashed and checked on two worker threads of their own, so
a sign-in never stalls the event loop and a flood of sign-ins queues there instead of taking every core from the
API (a check costs about 0.2 s of CPU: ``bench/README.md``). What is stored is the PHC string
(``$argon2id$v=19$m=...,t=...,p=...$salt$hash``): the parameters travel with each hash, so stronger ones later
re-hash a password at its next sign-in.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: The shortest and longest password accepted (long enough to resist guessing; bounded so hashing stays cheap).
MIN_LENGTH = 12
MAX_LENGTH = 1024

# argon2-cffi's defaults are RFC 9106's second recommended profile: Argon2id, t=3, m=64 MiB, p=4.
_hasher = PasswordHasher()
#: At most this many hashes at once (the machine's cores are the API's too); more wait their turn.
_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def _off_loop(fn: object, *args: str) -> object:
    return await asyncio.get_running_loop().run_in_executor(_workers, fn, *args)  # type: ignore[arg-type]


def password_problem(password: str) -> str | None:
    """Why ``password`` is refused as a new password, or None. Never echoes the password."""
    if len(password) < MIN_LENGTH:
        return f"a password has at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if not password.strip():
        return "a password cannot be only spaces"
    return None


def _hash(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password`` (about 50 ms of one core, off the event loop)."""
    return str(await _off_loop(_hash, password))


async def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash (constant time in the library)."""
    return bool(await _off_loop(_verify, stored, password))


def needs_rehash(stored: str) -> bool:
    """Whether the stored hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


@functools.cache
def _decoy() -> str:
    return _hash("a password nobody has: the decoy for unknown names")


async def burn_time(password: str) -> None:
    """Spend what a real check would, for a name that has no password: a wrong name and a wrong password take
    the same time, so timing does not say whether a user exists."""
    await verify_password(str(await _off_loop(_decoy)), password)
