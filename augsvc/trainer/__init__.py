"""Companion trainer: train, fine-tune and distil on published versions; compare runs (PyTorch, imported lazily).

Modules: ``config`` (TrainConfig), ``models``, ``losses``, ``finetune``, ``data`` (inputs per modality), ``loop``
(train/evaluate/resume), ``teacher`` (logits and the teacher build stage), ``reports`` (metrics, plots, compare),
``cli`` (``register(app)`` adds ``augsvc train`` and ``augsvc compare``). See docs/trainer.md.
"""
