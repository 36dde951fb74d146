"""Simulators: one per device kind, standing in for real devices in tests and drills."""
