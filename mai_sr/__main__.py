"""`python -m mai_sr` is `mai-sr`."""

import sys

from mai_sr.cli import main

sys.exit(main())
