"""Admin feature module: people signing in and out, and admins managing them (see registry.py for the contract).

Sign-in routes (open to anyone; they are how one gets credentials):

* ``GET /auth/options``: what the sign-in page offers (passwords, a single sign-on button);
* ``POST /auth/password`` ``{"login", "password"}``: a session cookie, or 401 with the same words whatever was
  wrong (``people.REFUSED``); JSON only, so a form on another site cannot sign a browser in;
* ``POST /auth/signout``: the session ends for every replica, the cookie is cleared;
* ``GET /auth/oidc/start``: to the provider (authorization code with PKCE), with a cookie binding the sign-in to
  this browser; ``GET /auth/oidc/callback``: the provider's answer, checked, then a session and back to the UI.

People management (``/api/v1/users``, admins only: the ``users`` tag is in ``auth.ADMIN_TAGS``): list, create a
local user, change name, e-mail, roles, disable, reset a password, end a person's sessions.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..changes import InvalidInput, MalformedRequest, NotFound, check_key, convert, parse_json
from ..people import GroupRole, People, SignInFailed, UserView, user_view
from ..tokens import ANY, Grant
from .auth import SESSION_COOKIE, USERS_TAG, Principal
from .routes import API, Endpoint, json_response, read_body

log = logging.getLogger("flagstream.admin.people")

SIGN_IN_TAG = "sign-in"
#: The cookie tying an OpenID Connect sign-in to the browser that started it.
SIGN_IN_COOKIE = "flagstream_signin"
CALLBACK = "/auth/oidc/callback"


def _people(request: Request) -> People:
    people = request.app.state.auth.people
    if people is None:
        raise NotFound("sign-in is not available yet")
    return people  # type: ignore[no-any-return]


def _by(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int, path: str = "/") -> None:
    people: People | None = request.app.state.auth.people
    forced = people.config.secure_cookies if people is not None else None
    secure = forced if forced is not None else request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="lax", secure=secure)


def _same_origin(request: Request) -> None:
    """A browser's cross-site POST says where it comes from: refuse one from another origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise MalformedRequest(f"sign-in from another site ({origin}) is refused")


# -- signing in ------------------------------------------------------------------------------------------


class SsoOption(msgspec.Struct, kw_only=True):
    label: str
    start: str


class SignInOptions(msgspec.Struct, kw_only=True):
    #: Local users may sign in with a password.
    passwords: bool
    #: The single sign-on button, if a provider is configured.
    sso: SsoOption | None = None


class SessionState(msgspec.Struct, kw_only=True):
    #: Whether this browser's session cookie is a live session (then GET /api/v1/whoami says who).
    signed_in: bool


class PasswordBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    login: str
    password: str


class SignedInBody(msgspec.Struct, kw_only=True):
    name: str
    id: str
    #: Send it in X-CSRF-Token with every change made with this session.
    csrf: str


async def options(request: Request) -> Response:
    people: People | None = request.app.state.auth.people
    config = people.config if people is not None else None
    sso = None
    if config is not None and config.oidc is not None:
        sso = SsoOption(label=config.oidc.label, start="/auth/oidc/start")
    return json_response(SignInOptions(passwords=config.passwords if config else True, sso=sso))


async def session_state(request: Request) -> Response:
    """Whether the browser is signed in, without a 401 when it is not (a page asks this before anything else)."""
    people: People | None = request.app.state.auth.people
    cookie = request.cookies.get(SESSION_COOKIE)
    live = bool(cookie and people is not None and await people.resolve(cookie) is not None)
    return json_response(SessionState(signed_in=live))


async def sign_in(request: Request) -> Response:
    _same_origin(request)
    if "application/json" not in request.headers.get("content-type", ""):
        raise MalformedRequest("send the login and password as JSON (Content-Type: application/json)")
    body = convert(parse_json(await read_body(request)), PasswordBody)
    people = _people(request)
    secret, session = await people.sign_in(body.login, body.password)
    response = json_response(SignedInBody(name=session.name, id=session.user_id, csrf=session.csrf))
    max_age = int((session.expires_at - session.created_at).total_seconds())
    _cookie(response, request, SESSION_COOKIE, secret, max_age)
    return response


async def sign_out(request: Request) -> Response:
    _same_origin(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await _people(request).sign_out(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


class RedactSignInAnswers(logging.Filter):
    """The access log line of the provider's answer without its query (the authorization code and state)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and args[2].startswith(CALLBACK):
            record.args = (*args[:2], CALLBACK + ("?[redacted]" if "?" in args[2] else ""), *args[3:])
        return True


def redact_sign_in_answers() -> None:
    """Install ``RedactSignInAnswers`` on uvicorn's access log (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignInAnswers) for f in access.filters):
        access.addFilter(RedactSignInAnswers())


def _redirect_uri(request: Request, people: People) -> str:
    configured = people.oidc.config.redirect_url if people.oidc is not None else ""
    return configured or str(request.url.replace(path=CALLBACK, query=""))


def _return_to(raw: str | None) -> str:
    """Only a path of this server's UI: never an open redirect elsewhere."""
    if raw and raw.startswith("/ui/") and "//" not in raw and "\\" not in raw:
        return raw
    return "/ui/"


async def sso_start(request: Request) -> Response:
    """To the provider. The browser was sent here: a failure is a page saying why, with a way back."""
    people = request.app.state.auth.people
    if people is None or people.oidc is None:
        return _failed_page("Single sign-on is not configured on this server.", 404)
    try:
        url, browser = await people.begin_sso(
            _redirect_uri(request, people), _return_to(request.query_params.get("to"))
        )
    except SignInFailed as exc:
        log.warning("single sign-on cannot start: %s", exc.message)
        return _failed_page(f"Single sign-on is unavailable: {exc.message}.", 503)
    response = RedirectResponse(url, status_code=303)
    _cookie(response, request, SIGN_IN_COOKIE, browser, 600, path="/auth/oidc/")
    return response


def _failed_page(message: str, status: int) -> Response:
    text = html.escape(message)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed - Flagstream</title>'
        '<link rel="stylesheet" href="/ui/app.css"></head><body><main class="panel signin">'
        f'<h1>Sign-in failed</h1><p role="alert">{text}</p><p><a href="/ui/">Back to sign-in</a></p>'
        "</main></body></html>"
    )
    response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    response.delete_cookie(SIGN_IN_COOKIE, path="/auth/oidc/")
    return response


async def sso_callback(request: Request) -> Response:
    """The provider's answer. The browser was sent here: every failure is a page saying why, with a way back."""
    people = request.app.state.auth.people
    if people is None or people.oidc is None:
        return _failed_page("Single sign-on is not configured on this server.", 404)
    query = request.query_params
    if "error" in query:
        reason = query.get("error_description") or query["error"]
        log.warning("single sign-on: the provider answered with an error: %s", reason[:200])
        return _failed_page(f"The identity provider did not sign you in: {reason[:200]}", 401)
    state, code = query.get("state"), query.get("code")
    if not state or not code:
        return _failed_page("The answer from the identity provider lacks its code or state.", 400)
    try:
        secret, session, to = await people.finish_sso(
            state=state, code=code, browser=request.cookies.get(SIGN_IN_COOKIE),
            redirect_uri=_redirect_uri(request, people), iss=query.get("iss"),
        )  # fmt: skip
    except SignInFailed as exc:
        log.warning("single sign-on refused: %s", exc.message)
        return _failed_page(f"Sign-in refused: {exc.message}.", 401)
    response = RedirectResponse(to, status_code=303)
    _cookie(response, request, SESSION_COOKIE, secret, int((session.expires_at - session.created_at).total_seconds()))
    response.delete_cookie(SIGN_IN_COOKIE, path="/auth/oidc/")
    return response


# -- managing people -------------------------------------------------------------------------------------


class UserBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    login: str
    name: str
    email: str = ""
    password: str
    grants: list[Grant] = []


class UserPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    email: str | None = None
    grants: list[Grant] | None = None
    disabled: bool | None = None


class PasswordReset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    password: str


class UserList(msgspec.Struct, kw_only=True):
    items: list[UserView]


def checked_grants(grants: list[Grant]) -> list[Grant]:
    """Grants whose project and environment are keys (or ``*``)."""
    for at, grant in enumerate(grants):
        try:
            if grant.project != ANY:
                check_key(grant.project, "project")
            if grant.environment != ANY:
                check_key(grant.environment, "environment")
        except MalformedRequest as exc:
            raise InvalidInput(f"grants[{at}]: {exc.message} (or * for every one)") from None
    if len(grants) > 200:
        raise InvalidInput("at most 200 grants per person")
    return grants


async def list_users(request: Request) -> Response:
    users = await _people(request).users.list()
    return json_response(UserList(items=[user_view(u) for u in users]))


async def create_user(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), UserBody)
    user = await _people(request).create_user(
        login=body.login, name=body.name, email=body.email, password=body.password,
        grants=checked_grants(body.grants), by=_by(request),
    )  # fmt: skip
    return json_response(user_view(user), 201, {"Location": f"{API}/users/{user.id}"})


async def get_user(request: Request) -> Response:
    user = await _people(request).users.get(request.path_params["id"])
    if user is None:
        raise NotFound(f"user {request.path_params['id']!r} not found")
    return json_response(user_view(user))


async def patch_user(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), UserPatch)
    user = await _people(request).update_user(
        request.path_params["id"], by=_by(request), name=body.name, email=body.email,
        grants=checked_grants(body.grants) if body.grants is not None else None, disabled=body.disabled,
    )  # fmt: skip
    return json_response(user_view(user))


async def reset_password(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), PasswordReset)
    user = await _people(request).set_password(request.path_params["id"], body.password, by=_by(request))
    return json_response(user_view(user))


async def end_sessions(request: Request) -> Response:
    user = await _people(request).end_sessions(request.path_params["id"], by=_by(request))
    return json_response(user_view(user))


class GroupRoles(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the identity provider's groups give (``GroupRole``: group, role, project, environments)."""

    items: list[GroupRole]


class GroupRolesInForce(GroupRoles, kw_only=True):
    #: ``api``: set here, shared by every replica; ``file``: the people configuration's ``oidc.roles``.
    source: str


async def get_group_roles(request: Request) -> Response:
    roles, source = await _people(request).group_roles()
    return json_response(GroupRolesInForce(items=roles, source=source))


async def put_group_roles(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), GroupRoles)
    for at, rule in enumerate(body.items):
        checked_grants([Grant(role=rule.role, project=rule.project, environment=e) for e in rule.environments])
        if not rule.group.strip() or len(rule.group) > 256:
            raise InvalidInput(f"items[{at}].group: a group name of 1 to 256 characters")
    people = _people(request)
    await people.set_group_roles(body.items, by=_by(request))
    roles, source = await people.group_roles()
    return json_response(GroupRolesInForce(items=roles, source=source))


async def reset_group_roles(request: Request) -> Response:
    people = _people(request)
    await people.set_group_roles(None, by=_by(request))
    roles, source = await people.group_roles()
    return json_response(GroupRolesInForce(items=roles, source=source))


USER = f"{API}/users/{{id}}"
GROUPS = f"{API}/sso/group-roles"
ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/auth/options", options, "signInOptions", "How one may sign in here (password, single sign-on)",
             SIGN_IN_TAG, None, SignInOptions, public=True),
    Endpoint("GET", "/auth/session", session_state, "sessionState",
             "Whether this browser has a live session (no 401 when not)", SIGN_IN_TAG, None, SessionState,
             public=True),
    Endpoint("POST", "/auth/password", sign_in, "signInWithPassword",
             "Sign in with a login and password: a session cookie (the same 401 whatever was wrong)", SIGN_IN_TAG,
             PasswordBody, SignedInBody, extra_statuses=(401, 422), public=True),
    Endpoint("POST", "/auth/signout", sign_out, "signOut", "End this browser's session", SIGN_IN_TAG, None, None, 204,
             public=True),
    Endpoint("GET", "/auth/oidc/start", sso_start, "signInWithProvider",
             "To the identity provider (OpenID Connect, authorization code with PKCE)", SIGN_IN_TAG, status=303,
             extra_statuses=(404, 503), public=True, error_media_type="text/html"),
    Endpoint("GET", CALLBACK, sso_callback, "providerCallback",
             "The identity provider's answer: checked, then a session and back to the UI", SIGN_IN_TAG, status=303,
             extra_statuses=(400, 401, 404), public=True, error_media_type="text/html"),
    Endpoint("GET", f"{API}/users", list_users, "listUsers", "List people (never their password hashes)",
             USERS_TAG, None, UserList),
    Endpoint("POST", f"{API}/users", create_user, "createUser", "Create a local user with a password and roles",
             USERS_TAG, UserBody, UserView, 201, write=True),
    Endpoint("GET", USER, get_user, "getUser", "Get a person", USERS_TAG, None, UserView),
    Endpoint("PATCH", USER, patch_user, "patchUser", "Change a person's name, e-mail, roles, or disable them",
             USERS_TAG, UserPatch, UserView, write=True),
    Endpoint("POST", f"{USER}/password", reset_password, "resetPassword",
             "Set a local user's password (their sessions end)", USERS_TAG, PasswordReset, UserView, write=True),
    Endpoint("GET", GROUPS, get_group_roles, "getGroupRoles",
             "The roles the identity provider's groups give, and whether set here or in the file", USERS_TAG, None,
             GroupRolesInForce),
    Endpoint("PUT", GROUPS, put_group_roles, "setGroupRoles",
             "Set the roles the identity provider's groups give (every replica; replaces the file's)", USERS_TAG,
             GroupRoles, GroupRolesInForce, write=True),
    Endpoint("DELETE", GROUPS, reset_group_roles, "resetGroupRoles",
             "Back to the roles of the people configuration file", USERS_TAG, None, GroupRolesInForce, write=True),
    Endpoint("POST", f"{USER}/signout", end_sessions, "endSessions", "End every session of a person", USERS_TAG,
             None, UserView, write=True),
]  # fmt: skip
