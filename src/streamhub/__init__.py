"""streamhub: a self-hosted real-time data streams engine."""

__version__ = "0.1.0"
__all__ = ["__version__"]
