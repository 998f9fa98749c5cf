"""``python -m lash.cli``."""

from lash.cli import main

main()
