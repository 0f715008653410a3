"""augsvc: data augmentation service and dataset builder."""

from schemas.version import PACKAGE_VERSION as __version__

__all__ = ["__version__"]
