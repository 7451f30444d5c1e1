"""Example workflows shipped with unified (the demo that `make run` starts)."""
