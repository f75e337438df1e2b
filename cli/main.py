"""The ``mrirecon`` command group. Commands are registered explicitly below."""

from __future__ import annotations

import click

from mrirecon import __version__
from mrirecon_cli.batch import batch
from mrirecon_cli.convert import convert
from mrirecon_cli.convert_checkpoint import convert_checkpoint
from mrirecon_cli.demo import demo
from mrirecon_cli.errors import ErrorReportingGroup
from mrirecon_cli.evaluate import evaluate
from mrirecon_cli.export_dicom import export_dicom
from mrirecon_cli.infer import infer
from mrirecon_cli.manifest import manifest
from mrirecon_cli.models import models
from mrirecon_cli.simulate import simulate
from mrirecon_cli.train import train


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mrirecon")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mrirecon: reconstruct accelerated MRI from raw multi-coil k-space.

    Physics-guided recurrent networks (RIM, CIRIM, RecurrentVarNet) and classical baselines;
    training, fastMRI-exact evaluation, batch reconstruction and DICOM export.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


COMMANDS: list[click.Command] = [demo, evaluate, export_dicom, simulate, convert, manifest]
COMMANDS += [infer, batch, models, train, convert_checkpoint]
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    from mrirecon.runtime import tune_allocator

    tune_allocator()
    cli(prog_name="mrirecon")
