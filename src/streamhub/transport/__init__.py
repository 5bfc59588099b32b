"""The edge: the only code that touches sockets and HTTP (aiohttp)."""
