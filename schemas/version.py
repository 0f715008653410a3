"""The package version: one place, read by pyproject (dynamic version), manifests and build definitions."""

PACKAGE_VERSION = "0.1.0"
