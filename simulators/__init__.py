"""Device simulators: one per device kind, driven by scenario files."""
