"""SharpEye composition root: command line, process settings, embedded services and wiring."""

__version__ = "0.1.0"
