"""Pure domain: names, items, events, update ops, subscription matching. No I/O, no sockets, no storage."""
