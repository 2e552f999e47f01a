"""The composition root: runtime wiring, the ``gridgate`` command line, the demo, the benchmarks.

Nothing imports this package; it imports everything.
"""
