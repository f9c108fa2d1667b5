"""Searches over warps: exact and probabilistic bisection, explore."""
