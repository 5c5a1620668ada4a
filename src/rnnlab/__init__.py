"""rnnlab: recurrent networks from their equations, trained on real data."""

__version__ = "0.1.0"
