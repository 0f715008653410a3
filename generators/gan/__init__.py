"""Class-conditional GAN for image versions (PyTorch; imported only when the ``gan`` generator or ``augsvc models
train-gan`` is used).

- :mod:`generators.gan.nets`: the networks (a DCGAN-style generator with class-conditional batch norm, a projection
  discriminator with spectral norm) and DiffAugment (translation, cutout) for training on little data.
- :mod:`generators.gan.train`: :func:`~generators.gan.train.train_gan` (hinge loss, EMA generator, checkpoints,
  resume, sample grids, loss plot) and checkpoint reading with its content hash.
- :mod:`generators.gan.generator`: the ``gan`` generator on the protocol of ``generators/base.py``, with the quality
  gate (a trained classifier scores samples; optional confidence threshold; per-class Frechet distance).
"""
