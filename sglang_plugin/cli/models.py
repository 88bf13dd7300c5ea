"""`tts-planner models`: the shipped predictors, their training data and held-out accuracy."""

from __future__ import annotations

import click


@click.command("models")
def models_command() -> None:
    """List the shipped predictors with their training data and held-out accuracy."""
    from planner.prediction.metrics import format_metrics
    from planner.prediction.model_store import models_dir, shipped_cards

    for card in shipped_cards():
        click.echo(f"{card['policy']}  ({models_dir() / card['model_file']})")
        click.echo(f"  trained on {card['training_data']['file']} [{card['training_data']['split']}], "
                   f"label {card['label_column']}")
        for split, metrics in card["held_out_metrics"].items():
            click.echo(f"  {split:<10} {format_metrics(metrics)}")
