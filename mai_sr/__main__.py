"""`python -m mai_sr` is `mai-sr`."""

from mai_sr.cli import run

run()
