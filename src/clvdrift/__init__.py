"""clvdrift: keep a Customer Lifetime Value model honest in production."""

__version__ = "0.1.0"
__all__ = ["__version__"]
