"""``python -m sentrail``: the same as the ``sentrail`` command."""

from sentrail.cli.app import main

main()
