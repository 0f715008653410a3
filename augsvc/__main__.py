"""``python -m augsvc`` runs the command line (the same as the ``augsvc`` script)."""

from augsvc.cli import main

main()
