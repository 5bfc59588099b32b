"""Storage adapters behind one interface (``base.StreamAdapter``): ``memory``, ``file``."""
