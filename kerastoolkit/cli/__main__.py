"""`python -m kerastoolkit.cli`: the `kerastoolkit` command."""

import sys

from kerastoolkit.cli import main

sys.exit(main())
