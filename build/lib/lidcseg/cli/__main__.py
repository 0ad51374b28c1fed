"""`python -m lidcseg.cli`: the same as the `lidcseg` command."""

import sys

from lidcseg.cli import main

sys.exit(main())
