"""hatd: a HAT (Hub of All Things) personal data server."""

__version__ = "0.1.0"
