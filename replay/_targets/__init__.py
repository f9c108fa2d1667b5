"""Targets: where a replay connects (the `Target`/`Connection` seam and its implementations)."""
