"""Config: the pydantic model tree an operator edits (site YAML), its loader and its checker."""
