"""The pure core: bytes in, values out.  No sockets, files, clock or printing here."""
