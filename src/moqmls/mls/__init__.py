"""MLS (RFC 9420): sans-I/O group key agreement. No asyncio, no sockets, no clocks."""
