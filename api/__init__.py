"""HTTP API and console: the FastAPI app factory, one router per resource, static console files."""
