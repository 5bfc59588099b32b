"""Sans-I/O wire protocols: typed messages, frame encoding and per-connection state. Nothing here awaits."""
