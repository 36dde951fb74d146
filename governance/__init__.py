"""Governance: cases, dispatch over the org tree, SLA clocks and lights, escalation, statistics."""
