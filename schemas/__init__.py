"""Arrow schemas and pydantic models of the on-disk contract."""
