"""augsvc: data augmentation service and dataset builder."""

__version__ = "0.1.0"
