"""``python -m forkpoint.benchmarks [--quick] ...``: exactly ``forkpoint bench ...``.

It runs through the CLI's root group, so errors meet the one boundary every command
shares (``cli.ForkpointGroup.main``: one line, the error's exit code).
"""

import sys


def main(argv: list[str] | None = None) -> None:
    from forkpoint.cli import main as cli

    cli.main(args=["bench", *(sys.argv[1:] if argv is None else argv)], prog_name="forkpoint")


if __name__ == "__main__":
    main()
