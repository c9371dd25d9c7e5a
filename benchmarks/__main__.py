"""``python -m benchmarks [--quick] ...``: the same command as ``forkpoint bench``."""

import sys

from forkpoint.benchmarks.commands import bench_command
from forkpoint.contract.errors import ForkpointError


def main() -> None:
    try:
        bench_command.main(standalone_mode=False, prog_name="python -m benchmarks")
    except ForkpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
