"""forkpoint's command line (a thin layer over learner, registry, imagedata, scenarios)."""
import click


@click.group()
def main() -> None:
    """forkpoint: add classification tasks to one frozen backbone, forgetting nothing."""


if __name__ == "__main__":
    main()
