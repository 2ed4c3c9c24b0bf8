"""One module per command; see reconciler.cli."""
