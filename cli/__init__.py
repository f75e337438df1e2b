"""The ``mrirecon`` command-line application (installed as the ``mrirecon_cli`` package).

Each command is thin: it parses options and calls one library function. Commands import torch and
the library lazily, inside the command, so ``mrirecon --help`` is instant.
"""
