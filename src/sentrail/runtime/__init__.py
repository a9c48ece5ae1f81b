"""Sources, batch running and (later) buses and workers: everything that does I/O."""
