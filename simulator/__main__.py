"""``python -m simulator``: the simulated controllers (see ``simulator.cli``)."""

import sys

from simulator.cli import main

sys.exit(main())
