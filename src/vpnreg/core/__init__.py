"""The pure core: decisions only. Nothing here reads a clock, a key, a file or a database."""
