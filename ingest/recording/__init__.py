"""Own recordings of cameras without an NVR: segmented MP4 remuxed from the camera's packets, an index by time,
retention by age and size, and one MP4 of any range (``config``, ``segment``, ``store``, ``recorder``)."""
