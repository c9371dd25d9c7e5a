"""``forkpoint serve``: the HTTP API (and web UI) over the live tasks, following the registry."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import click

from forkpoint.commands._paths import folder_exists
from forkpoint.commands._shared import State, device_option, pass_state

DEFAULT_QUEUE = 64  # requests waiting for a pass; each holds its decoded images in memory


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Fail before loading anything when the address cannot be bound (uvicorn would only log it)."""
    from forkpoint.contract.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e}): pick another --port or --host") from None


def _token(var: str | None) -> str | None:
    from forkpoint.contract.errors import ConfigError

    if var is None:
        return None
    value = os.environ.get(var, "").strip()
    if not value:
        raise ConfigError(f"--token-env {var}: the environment variable {var} is not set or empty: "
                          f"export {var}=<a long random token> first")
    return value


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default; "
              "anything else should come with --token-env).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--task", "task_names", multiple=True, metavar="NAME",
              help="Serve only these tasks (repeatable). Default: every live task, including tasks added later.")
@click.option("--token-env", metavar="VAR", help="Require 'Authorization: Bearer <token>' on every request, the token "
              "being the value of environment variable VAR (the web UI also takes ?token=... once, then a cookie).")
@click.option("--reports", "reports_dir", type=click.Path(file_okay=False, path_type=Path), callback=folder_exists,
              help="Folder of `forkpoint stream run` reports shown by the web UI.")
@device_option("cpu", "Where the shared pass runs.")
@click.option("--max-batch", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Most images in one micro-batched forward pass.")
@click.option("--queue", "max_queue", type=click.IntRange(min=1), default=DEFAULT_QUEUE, show_default=True, metavar="N",
              help="Most requests waiting for a pass; the next is refused at once (503, Retry-After: 1). Size it to "
              "the number of concurrent clients (each waiting request holds its decoded images in memory).")
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=4.0, show_default=True,
              help="How long the first request of a batch waits for others.")
@click.option("--max-images", type=click.IntRange(1, 1024), default=16, show_default=True, help="Most images per request.")
@click.option("--max-request-mb", type=click.FloatRange(0.01, 4096), default=32.0, show_default=True,
              help="Largest request body, in MiB.")
@click.option("--poll-s", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="How often the registry's live pointers are read (the server follows promote/rollback/add-task).")
@click.option("--cache-mb", type=click.FloatRange(1, 1e7), default=None, metavar="MB",
              help="Keep at most this many MiB of branches in memory (least recently used go first). Branches load "
              "when a request first needs them, verified; default: no bound.")
@pass_state
def serve(state: State, host: str, port: int, task_names: tuple[str, ...], token_env: str | None, reports_dir: Path | None,
          device: str, max_batch: int, max_queue: int, max_wait_ms: float, max_images: int, max_request_mb: float, poll_s: float,
          cache_mb: float | None) -> None:
    """Serve every live task (or --task ones) over HTTP: POST /v1/predict, GET /v1/tasks, /healthz, /readyz, /metrics."""
    # usage errors that need no model first, before torch loads: an asked-for GPU (its checks need torch),
    # the token variable, the port, the home and every --task
    if device.strip().lower() not in ("auto", "cpu"):
        from forkpoint.learner.device import resolve_device

        resolve_device(device)  # a bad or unavailable --device exits 2 before the home is read
    token = _token(token_env)
    _check_port(host, port)
    with state.open() as home:  # the home, its trunk and every --task are checked before binding (exit 2 naming the fix)
        for name in task_names:
            if home.registry.get_task(name).live_version is None:
                raise click.UsageError(f"task {name!r} has no live version: `forkpoint promote {name} VERSION` first")
    import uvicorn

    from forkpoint.learner.device import resolve_device
    from forkpoint.serving.app import ServeConfig, create_app
    from forkpoint.serving.uploads import Limits

    target = str(resolve_device(device))
    if not _loopback(host) and token is None:
        state.stderr.print(f"warning: serving on {host} without --token-env: anyone who can reach port {port} can use the API",
                           highlight=False, markup=False)
    state.compute()
    config = ServeConfig(tasks=task_names, token=token, reports_dir=reports_dir, poll_s=poll_s, max_batch_images=max_batch,
                         max_wait_ms=max_wait_ms, max_queue=max_queue, device=target, cache_mb=cache_mb,
                         limits=Limits(max_request_bytes=int(max_request_mb * 1024 * 1024), max_images=max_images))
    app = create_app(state.open, config)
    state.note(f"serving {', '.join(task_names) or 'every live task'} on http://{host}:{port} "
               f"(POST /v1/predict, GET /v1/tasks, /readyz, /metrics); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, log_level="warning" if state.quiet else "info",
                access_log=state.verbose > 0, lifespan="on")


COMMANDS: list[click.Command] = [serve]
