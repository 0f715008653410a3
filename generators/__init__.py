"""augsvc generators: see docs/architecture.md (not built yet)."""
