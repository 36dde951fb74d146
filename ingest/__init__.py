"""Ingest: the driver contract, the drivers, the transports they share and their supervision."""
