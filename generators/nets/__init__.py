"""Classifier networks shared by the trainer (``augsvc/trainer``), the teacher stage and generators' quality gates:
architectures (``models``), input preparation saved in every checkpoint (``prep``), and loading a trained run for
inference (``classifier``). Torch is imported only by the modules that need it."""
