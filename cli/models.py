"""``mrirecon models``: the registered reconstructors with their parameter counts."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--configs", is_flag=True, help="Also list the model config files (configs/models/*.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(configs: bool, as_json: bool) -> None:
    """List every registered model with its summary and parameter count at its default config, and
    the shipped pretrained models with their headline figures."""
    from mrirecon.models.catalog import describe_configs, describe_models, describe_pretrained

    rows = describe_models()
    pretrained = describe_pretrained()
    config_rows = describe_configs() if configs else []
    if as_json:
        payload = {
            "models": [row.__dict__ for row in rows],
            "pretrained": [row.__dict__ for row in pretrained],
            **({"configs": [row.__dict__ for row in config_rows]} if configs else {}),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    _table(
        ["model", "parameters", "trainable", "summary"],
        [[r.name, f"{r.parameters:,}", "yes" if r.trainable else "no", r.summary] for r in rows],
    )
    if pretrained:
        click.echo("\nPretrained (use the name wherever a checkpoint goes; docs/pretrained.md):")
        _table(
            ["name", "model", "parameters", "measured"],
            [[r.name, r.model, f"{r.parameters:,}", r.summary] for r in pretrained],
        )
    if configs:
        click.echo("")
        _table(
            ["config", "model", "parameters", "file"],
            [[r.name, r.model, f"{r.parameters:,}", r.summary] for r in config_rows],
        )


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        cells = [c.rjust(w) if c.replace(",", "").isdigit() else c.ljust(w) for c, w in zip(row, widths)]
        click.echo("  ".join(cells).rstrip())
