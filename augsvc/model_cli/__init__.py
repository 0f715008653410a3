"""``augsvc models``: train the small models that model-backed generators use (a GAN, a causal LM, a translator).

Each family adds its commands from its own module through ``register(models_app)``; only typer is imported at
start-up, torch and transformers load inside the commands so ``augsvc --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

models_app = typer.Typer(help="Train the models that model-backed generators use.", no_args_is_help=True)

# modules that add commands to ``models_app`` (each defines ``register(app)``)
COMMAND_MODULES: list[str] = ["augsvc.model_cli.gan_cli", "augsvc.model_cli.text_cli"]


def register(app: typer.Typer) -> None:
    """Add ``augsvc models ...`` to the main app."""
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(models_app)
    if COMMAND_MODULES:
        app.add_typer(models_app, name="models")
