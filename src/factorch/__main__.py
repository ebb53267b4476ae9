"""``python -m factorch``: the command line (same as the ``factorch`` console script)."""

from factorch.cli import main

if __name__ == "__main__":
    main()
