"""``python -m flagstream.services.cli``: the same as the ``flagstream`` command."""

import sys

from . import main

sys.exit(main())
