"""Entry point of ``python -m adasam``."""

import sys

from adasam.cli import main

sys.exit(main())
