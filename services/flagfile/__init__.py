"""Flags as code, the pure part: the export file of one environment (YAML or JSON) and the plan that would make
an environment match it. The ``flagstream export | plan | apply`` commands (``services/cli/flagfile.py``) do the
I/O through the admin API.
"""

from .planning import (
    FORMATS,
    Action,
    Change,
    Current,
    FlagFile,
    FlagFileError,
    Plan,
    describe,
    dump,
    load,
    plan,
    render,
)

__all__ = [
    "FORMATS",
    "Action",
    "Change",
    "Current",
    "FlagFile",
    "FlagFileError",
    "Plan",
    "describe",
    "dump",
    "load",
    "plan",
    "render",
]
