"""Load replay: fan-out (pure), running a load, its statistics."""
