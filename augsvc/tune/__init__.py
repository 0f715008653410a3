"""``augsvc tune``: find the augmentation that helps a dataset, on Ray Tune (docs/tune.md).

Modules: ``space`` (the space file, ``load_space``), ``search`` (candidates, the trial, the search, outputs,
``--test``), ``cli`` (``register(app)`` adds the command). Ray, torch and matplotlib load inside the command.
"""
