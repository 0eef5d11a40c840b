"""``python -m fmcore``: see ``fmcore.cli``."""

import sys

from .cli import main

sys.exit(main())
