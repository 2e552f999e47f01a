"""The ``gridgate bench`` benchmarks: each starts its own peers on loopback, runs, and prints its figures."""
