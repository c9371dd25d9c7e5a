"""`forkpoint init --store`: a home whose weights live in S3, used end to end through the CLI; bad stores refused."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from forkpoint.cli import main
from forkpoint.workflows.samples import write_samples

QUICK = ["--branch", "15:15", "--epochs", "1", "--limit-per-class", "5", "--patience", "0"]  # as tests/cli

torch.set_num_threads(1)


def forkpoint(home: Path, *args: str, data_root: Path | None = None) -> Result:
    env = {"FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    if data_root is not None:
        env["FORKPOINT_DATA"] = str(data_root)
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env, catch_exceptions=False)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


@pytest.mark.s3
def test_init_with_an_s3_store_then_add_predict_audit(tmp_path, store_url, bucket, objects):
    home, data_root = tmp_path / "home", tmp_path / "data"
    made = forkpoint(home, "init", "--resolution", "32", "--store", store_url, "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["created"] is True and f"weights in {store_url}" in made.stderr

    added = forkpoint(home, "-q", "add-task", "digits", "--data", "digits", *QUICK, "--json", data_root=data_root)
    assert added.exit_code == 0, added.output
    sha = json.loads(added.stdout)["weights_sha256"]
    assert f"weights/{sha[:2]}/{sha}.safetensors" in objects()  # the branch is in the bucket …
    assert not (home / "objects").exists()  # … and nothing in the home

    samples = tmp_path / "samples"
    write_samples("digits", samples, data_root=data_root)
    predicted = forkpoint(home, "predict", str(samples / "3_0.png"), "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["versions"] == {"digits": 1}

    audit = forkpoint(home, "audit", "--no-data", "--json")
    assert audit.exit_code == 0, audit.output
    report = json.loads(audit.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["orphans"] == []

    again = forkpoint(home, "init", "--resolution", "32", "--store", store_url)  # idempotent with the same store
    assert again.exit_code == 0, again.output
    other = forkpoint(home, "init", "--resolution", "32", "--store", f"s3://{bucket}/elsewhere")
    assert "keeps its weights in " + store_url in one_line_error(other)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, says", [
    ("weights-bucket", "has no scheme"),
    ("s3://AKIAKEY:very-secret@bucket/prefix", "never in the URL"),
    ("s3:///prefix-only", "names no bucket"),
    ("nosuchproto://x/y", "no usable file system"),
    ("file://relative/path", "absolute file URL"),
])
def test_a_bad_store_url_is_one_line_and_creates_nothing(tmp_path, url, says):
    home = tmp_path / "home"
    line = one_line_error(forkpoint(home, "init", "--resolution", "32", "--store", url))
    assert says in line and "very-secret" not in line
    assert not home.exists()


def test_an_unreachable_store_is_one_line_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKPOINT_S3_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    home = tmp_path / "home"
    line = one_line_error(forkpoint(home, "init", "--resolution", "32", "--store", "s3://bucket/prefix"))
    assert "cannot use the store s3://bucket/prefix" in line and "FORKPOINT_S3_ENDPOINT" in line
    assert not home.exists()


@pytest.mark.s3
def test_a_missing_bucket_is_one_line_and_creates_nothing(tmp_path, s3_env):
    home = tmp_path / "home"
    line = one_line_error(forkpoint(home, "init", "--resolution", "32", "--store", "s3://no-such-bucket-here/w"))
    assert "cannot use the store s3://no-such-bucket-here/w" in line and "bucket" in line
    assert not home.exists()


def test_a_file_store_outside_the_home(tmp_path):
    home, shared = tmp_path / "home", tmp_path / "shared"
    line = one_line_error(forkpoint(home, "init", "--resolution", "32", "--store", f"file://{shared}/objects"))
    assert "does not exist" in line and not home.exists() and not shared.exists()
    shared.mkdir()
    made = forkpoint(home, "init", "--resolution", "32", "--store", f"file://{shared}/objects")
    assert made.exit_code == 0, made.output
    assert (shared / "objects").is_dir() and not (home / "objects").exists()
