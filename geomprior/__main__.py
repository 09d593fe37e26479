"""``python -m geomprior``: the same as the ``geomprior`` command."""

import sys

from geomprior.cli import main

sys.exit(main())
