"""``python -m mrirecon_cli`` runs the same application as the ``mrirecon`` script."""

from mrirecon_cli.main import main

if __name__ == "__main__":  # (only when run, never on import)
    main()
