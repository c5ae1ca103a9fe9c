"""``python -m signal_gateway``: the same as the ``signal-gateway`` command."""

import sys

from signal_gateway.cli import main

sys.exit(main())
