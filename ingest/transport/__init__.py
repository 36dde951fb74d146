"""Transports: what owns a connection and its reconnects (MQTT, SIP, video capture); kinds sit in ingest/<kind>/."""
