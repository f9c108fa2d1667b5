"""Pictures: bisect plots, timelines, load plots (matplotlib or SVG, at the display edge)."""
