"""Image ops (label-invariant). Importing this package registers them all.

Inputs are uint8 HxWxC arrays with C = 1 (grey) or 3 (RGB); outputs keep the dtype and, except for
``random_resized_crop`` (whose output is its ``size``), the shape. Inputs are never modified in place.
"""

from pipelines.transforms.image import augmix, geometric, noise, policy, value  # noqa: F401
