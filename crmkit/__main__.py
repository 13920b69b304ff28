"""``python -m crmkit`` runs the command line."""

from crmkit.cli import main

main()
