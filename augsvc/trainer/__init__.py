"""Companion trainer: fine-tune and distil on published versions (PyTorch, imported lazily)."""
