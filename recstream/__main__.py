"""``python -m recstream``: the command line (the playground starts its worker this way)."""

from recstream.cli import main

main()
