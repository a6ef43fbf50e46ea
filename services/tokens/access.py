"""Who may do what: the ONE authorization decision, for API tokens and signed-in people alike.

A caller holds grants: a role on a project and an environment, either of which may be ``*`` (every one). An API
token is one grant per environment it is limited to (or one on ``*``); a person's grants are the ones given to
them and to their groups (``services/people``). The role that counts on a request is the highest granted where it
acts, so "writer on development, reader everywhere" and "writer on production" (the production writer, given
apart from the others) are just grants.

``decide`` is pure: the admin's ``auth.py`` calls it for every route with the route's needs, and answers 403
with the reason it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from .store import Role

#: A grant's project or environment that covers every one.
ANY = "*"


class Grant(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A role on a project and an environment (``*``: every one)."""

    role: Role
    project: str = ANY
    environment: str = ANY

    def on(self, project: str | None, environment: str | None) -> bool:
        """Whether this grant applies to ``environment`` of ``project`` (``None``: every one of them)."""
        if project is None and self.project != ANY:
            return False
        if project is not None and self.project not in (ANY, project):
            return False
        if environment is None:
            return self.environment == ANY
        return self.environment in (ANY, environment)

    def describe(self) -> str:
        where = "every environment" if self.environment == ANY else f"environment {self.environment!r}"
        if self.project != ANY:
            where += f" of project {self.project!r}"
        return f"{self.role} on {where}"


def role_on(grants: Iterable[Grant], project: str | None, environment: str | None) -> Role | None:
    """The highest role the grants give on ``environment`` of ``project`` (``None``: on every one), or None."""
    roles = [g.role for g in grants if g.on(project, environment)]
    return max(roles, key=lambda r: r.rank) if roles else None


def highest(grants: Iterable[Grant]) -> Role | None:
    """The highest role of any grant (what the UI shows first), or None."""
    roles = [g.role for g in grants]
    return max(roles, key=lambda r: r.rank) if roles else None


def decide(
    who: str,
    grants: Sequence[Grant],
    needed: Role,
    *,
    route: str,
    project: str | None,
    environment: str | None,
    every_environment: bool,
) -> str | None:
    """None if ``grants`` allow the route, else why not (the 403's message).

    ``environment``: the environment the route acts on, if it names one. A route naming none that writes or needs
    ``admin`` (creating an environment, managing tokens, people, webhooks) needs the role on every environment
    (``every_environment``); one that only reads needs the role somewhere in the project.
    """
    if environment is not None:
        role = role_on(grants, project, environment)
        if role is None:
            places = sorted({g.environment for g in grants if g.project in (ANY, project)})
            return f"{who} may not act on environment {environment!r} (only: {', '.join(places)})"
        if not role.allows(needed):
            return f"{who} has the role {role} on environment {environment!r}; {route} needs {needed}"
        return None
    if every_environment:
        role = role_on(grants, project, None)
        if role is None or not role.allows(needed):
            held = "; ".join(g.describe() for g in grants) or "nothing"
            return f"{who} holds {held}; {route} needs {needed} on every environment"
        return None
    scoped = [g for g in grants if project is None or g.project in (ANY, project)]
    role = highest(scoped)
    if role is None or not role.allows(needed):
        return f"{who} has the role {role or 'none'}; {route} needs {needed}"
    return None
