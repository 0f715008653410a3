"""Text ops (word and character level); importing this package registers them."""

from pipelines.transforms.text import char, contextual, word  # noqa: F401
