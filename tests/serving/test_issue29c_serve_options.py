"""Issue 29c (a, c): ``serve --queue N`` reaches the server's batcher, and ``--device cuda:N`` is accepted.

The CLI runs in-process up to the point where it would listen: ``create_app`` and ``uvicorn.run``
are replaced to capture the :class:`ServeConfig` the options built (no model is loaded, no port bound).
No GPU is needed: CUDA's presence is faked where the test needs it, and its absence is the real one.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def empty_home(tmp_path_factory, make_cli):
    """An initialised home with no task (serve starts on it: it follows tasks added later)."""
    cli = make_cli(tmp_path_factory.mktemp("issue29c") / "home")
    cli.ok("init", "--resolution", "32")
    return cli


@pytest.fixture
def captured(monkeypatch) -> list:
    """The ServeConfig each ``forkpoint serve`` built; nothing is served."""
    import uvicorn

    from forkpoint.serving import app as app_module

    configs: list = []
    monkeypatch.setattr(app_module, "create_app", lambda open_home, config: configs.append(config) or object())
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    return configs


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two visible GPUs as far as option checking can tell (no CUDA work is done; the kernels' global flags stay)."""
    from forkpoint.learner import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(device, "_cuda", lambda d: d)


def test_queue_reaches_the_server_config(empty_home, captured, free_port):
    result = empty_home("-q", "serve", "--queue", "300", "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    assert [c.max_queue for c in captured] == [300]


def test_the_queue_default_is_64(empty_home, captured, free_port):
    assert empty_home("-q", "serve", "--port", str(free_port())).exit_code == 0
    assert captured[0].max_queue == 64


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_queue_is_one_line_exit_2_naming_the_option(cli, one_line_error, value):
    assert "--queue" in one_line_error(cli("serve", "--queue", value))


def test_serve_help_documents_queue_beside_max_batch(cli):
    text = cli("serve", "--help").output
    assert "--queue N" in text and "503" in text
    assert text.index("--max-batch") < text.index("--queue") < text.index("--max-wait-ms")


@pytest.mark.parametrize("value, want", [("cuda:1", "cuda:1"), ("cuda:0", "cuda:0"), ("cuda", "cuda:0"), ("CUDA:1", "cuda:1")])
def test_cuda_n_is_accepted_and_reaches_the_server(empty_home, captured, free_port, fake_cuda, value, want):
    result = empty_home("-q", "serve", "--device", value, "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    assert captured[0].device == want


def test_cuda_n_past_the_visible_gpus_is_refused(cli, one_line_error, fake_cuda):
    assert "2 GPU(s)" in one_line_error(cli("serve", "--device", "cuda:5"))


@pytest.mark.parametrize("value", ["cuda", "cuda:0", "cuda:3"])
def test_without_cuda_a_cuda_device_is_one_line_exit_2_saying_so(cli, one_line_error, monkeypatch, value):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = one_line_error(cli("serve", "--device", value))  # before the home is read: this one does not exist
    assert "no CUDA GPU is visible" in err and "--device cpu" in err


@pytest.mark.parametrize("value", ["cuda:x", "cuda:", "gpu", "cuda:-1"])
def test_a_malformed_device_is_one_line_exit_2(cli, one_line_error, value):
    err = one_line_error(cli("serve", "--device", value))
    assert "cuda:N" in err or "no CUDA GPU" in err
