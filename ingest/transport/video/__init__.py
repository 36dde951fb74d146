"""Video capture: sources opened with PyAV, the capture thread, packets and their per-consumer subscriptions."""
