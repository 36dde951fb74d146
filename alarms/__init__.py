"""Alarms: rule evaluation, the alarm engine (dedup, state, ordering) and alarm storage."""
