"""Fixtures for the object-store suite: a real S3-compatible server on loopback, buckets, PostgreSQL.

The server is moto's server mode (``ThreadedMotoServer``: a werkzeug HTTP server in a
thread of this process, speaking the S3 REST protocol on a free loopback port). forkpoint
reaches it exactly as it reaches AWS: s3fs -> aiobotocore -> HTTP, with the endpoint and
the keys in the environment, so worker subprocesses reach the same server.
The PostgreSQL and sample fixtures are the registry suite's (tests/registry/conftest.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

_spec = importlib.util.spec_from_file_location(
    "forkpoint_tests_registry_conftest", Path(__file__).resolve().parents[1] / "registry" / "conftest.py")
assert _spec and _spec.loader
registry_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = registry_conftest  # dataclasses look their module up
_spec.loader.exec_module(registry_conftest)

# the registry suite's fixtures, under the same names
pg_cluster = registry_conftest.pg_cluster
pg_url = registry_conftest.pg_url
backend = registry_conftest.backend
db_url = registry_conftest.db_url
home = registry_conftest.home
Sample = registry_conftest.Sample


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server running for the session (skipped without moto, except in CI)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        msg = "moto's server mode is not installed: pip install 'moto[server]' (the dev extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg} (CI must run the S3 tests)")
        pytest.skip(msg)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3_ENV = {"AWS_ACCESS_KEY_ID": "forkpoint-test", "AWS_SECRET_ACCESS_KEY": "forkpoint-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a machine using the store has (set in this process too); no real AWS is reachable."""
    env = {**S3_ENV, "FORKPOINT_S3_ENDPOINT": s3_endpoint}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    return env


@pytest.fixture
def s3_client(s3_env: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=s3_env["FORKPOINT_S3_ENDPOINT"], region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket's name."""
    name = f"fp-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store_url(bucket: str) -> str:
    return f"s3://{bucket}/weights"


@pytest.fixture
def objects(s3_client, bucket: str):
    """``objects() -> {key: bytes}``: every object in the bucket, read with plain boto3 (not through forkpoint)."""

    def read() -> dict[str, bytes]:
        listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: s3_client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    return read


@pytest.fixture
def sample_of():
    """``sample_of(registry) -> Sample``: the registry suite's sample backbone and versions."""
    return Sample
