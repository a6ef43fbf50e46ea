"""``GET /api/v1/projects``: the projects that have environments, each with its environment keys.

There is no project entity: a project exists as soon as one of its environments does. The list is read from the
stream's subject index (``stream_info`` with a subject filter on ``flagstream.*.*.environment.*``): one
request, no consumer, no event decoded. A token limited to some environments sees only those (and only the
projects holding one of them).
"""

from __future__ import annotations

from collections import defaultdict

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response

from ...events import STREAM
from ...events.subjects import PREFIX, EntityKind, parse_subject
from .routes import API, Endpoint, json_response

ENVIRONMENT_SUBJECTS = f"{PREFIX}.*.*.{EntityKind.ENVIRONMENT}.*"


class Project(Struct, kw_only=True):
    key: str
    #: Environment keys, sorted (archived environments included: their flags still exist).
    environments: list[str]


class ProjectList(Struct, kw_only=True):
    items: list[Project]


def projects_of(subjects: list[str]) -> list[Project]:
    """Projects and their environments from environment subjects, sorted by key (pure)."""
    found: dict[str, set[str]] = defaultdict(set)
    for value in subjects:
        try:
            address = parse_subject(value)
        except ValueError:
            continue
        found[address.project].add(address.environment)
    return [Project(key=key, environments=sorted(envs)) for key, envs in sorted(found.items())]


async def list_projects(request: Request) -> Response:
    js = request.app.state.nc.jetstream()
    info = await js.stream_info(STREAM, subjects_filter=ENVIRONMENT_SUBJECTS)
    subjects = list((info.state.subjects or {}).keys())
    principal = getattr(request.state, "principal", None)
    projects = projects_of(subjects)
    if principal is not None and principal.environments is not None:
        projects = [
            Project(key=p.key, environments=[e for e in p.environments if principal.covers(p.key, e)]) for p in projects
        ]
        projects = [p for p in projects if p.environments]
    return json_response(ProjectList(items=projects))


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{API}/projects", list_projects, "listProjects", "List projects that have environments",
             "projects", None, ProjectList),
]  # fmt: skip
