"""``python -m mrirecon_cli`` runs the same application as the ``mrirecon`` script."""

from mrirecon_cli.main import main

if __name__ == "__main__":  # (not when a spawned DataLoader worker imports the main module)
    main()
