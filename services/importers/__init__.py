"""Importers from other flag systems: each reads the other system's own format and returns Flagstream flags and
segments with a per-flag report of what could not be carried over exactly (``common.ImportResult``).
"""

from .common import ImportFileError, ImportResult, Unmappable, render
from .flagd import import_flagd, load_flagd
from .flagsmith import import_flagsmith, load_flagsmith
from .growthbook import import_growthbook, load_growthbook
from .launchdarkly import import_launchdarkly, load_launchdarkly
from .unleash import import_unleash, load_unleash

__all__ = [
    "ImportFileError",
    "ImportResult",
    "Unmappable",
    "import_flagd",
    "import_flagsmith",
    "import_growthbook",
    "import_launchdarkly",
    "import_unleash",
    "load_flagd",
    "load_flagsmith",
    "load_growthbook",
    "load_launchdarkly",
    "load_unleash",
    "render",
]
