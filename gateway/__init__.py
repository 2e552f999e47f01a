"""gridgate: an edge IoT gateway for grid-based work-safety supervision."""

__version__ = "0.1.0"
