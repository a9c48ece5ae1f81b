"""The ``sentrail`` command line."""
