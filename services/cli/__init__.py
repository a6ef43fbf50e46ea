"""The ``flagstream`` command: ``up`` (everything, embedded), ``admin``, ``projector``, and client commands
(``flags``, ``envs``) that talk to a running admin API. Each sub-command lives in its own module and is
imported only when used, so ``flagstream flags`` works without loading the server stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: sub-command -> module with ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS: dict[str, tuple[str, str]] = {
    "up": (
        "flagstream.services.runtime.up",
        "run everything embedded: nats-server, admin API, projector",
    ),
    "admin": ("flagstream.services.admin.main", "run the admin API against a NATS server"),
    "projector": ("flagstream.services.projector.main", "run the projector against a NATS server"),
    "stream": ("flagstream.services.cli.stream", "create the event stream with N replicas (on a cluster)"),
    "nats-users": ("flagstream.services.cli.nats_users", "write NATS users and permissions for your own nats-server"),
    "envs": ("flagstream.services.cli.envs", "list and create environments through the admin API"),
    "flags": ("flagstream.services.cli.flags", "create, list, show and toggle flags through the admin API"),
    "tokens": ("flagstream.services.cli.tokens", "create, list and revoke API tokens through the admin API"),
    "client-keys": (
        "flagstream.services.cli.clientkeys",
        "create, list and revoke client-side keys (web pages, mobile apps) of an environment",
    ),
    "sdk-credentials": (
        "flagstream.services.cli.sdkcredentials",
        "create, list and revoke the SDK credentials (NATS users of applications) of an environment",
    ),
    "users": ("flagstream.services.cli.users", "create people who sign in, set passwords and roles, end sessions"),
    "webhooks": ("flagstream.services.cli.webhooks", "send each change to a URL of yours (Slack, CI), signed"),
    "projects": ("flagstream.services.cli.projects", "list projects and their environments through the admin API"),
    "export": ("flagstream.services.cli.flagfile", "write an environment's flags and segments to a YAML/JSON file"),
    "plan": ("flagstream.services.cli.flagfile", "show what applying a flags file to an environment would change"),
    "apply": ("flagstream.services.cli.flagfile", "make an environment match a flags file (If-Match per flag)"),
    "history": ("flagstream.services.cli.history", "audit log of flags, segments, an environment, with diffs"),
    "eval": ("flagstream.services.cli.history", "evaluate a context now, or as of a time or sequence"),
    "revert": ("flagstream.services.cli.history", "restore a flag or an environment to an earlier state"),
    "schedule": ("flagstream.services.cli.history", "list, create and cancel scheduled changes"),
    "plans": ("flagstream.services.cli.plans", "release plans: roll a variation out in steps, rolled back on harm"),
    "rebuild": ("flagstream.services.projector.main", "rebuild the projector's read model (projector --rebuild)"),
    "import": ("flagstream.services.cli.imports", "import flags and segments from Unleash or flagd via the admin API"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="flagstream", description="Event-sourced feature flags on NATS JetStream.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the module of the command being run
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)
