"""Op registry: one subpackage per family; importing this package registers every op."""

from pipelines.transforms import compose, image, text  # noqa: F401
