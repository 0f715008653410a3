"""augsvc pipelines: see docs/architecture.md (not built yet)."""
