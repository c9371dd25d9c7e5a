"""One module per benchmark section; each has ``run(ctx) -> dict`` and ``tables(result)``."""
