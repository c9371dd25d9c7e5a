"""Read-only commands stay light: reading the registry never imports torch (or timm, or safetensors).

Each check runs in a fresh interpreter (``[sys.executable, "-c", ...]``), because the test
process itself has long imported torch; it invokes ``forkpoint.cli.main`` in-process there
and looks at ``sys.modules`` after every command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "timm", "safetensors")
READ_COMMANDS = [
    ["tasks"], ["show", "digits"], ["show", "digits", "--version", "1", "--profile"], ["history", "digits"],
    ["diff", "digits", "1", "2"], ["events"], ["events", "--task", "mnist"],
]

SCRIPT = """
import json, sys
from forkpoint.cli import main

home, out, commands, watch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
results = []
for args in commands:
    code = main.main(["--home", home, *args], standalone_mode=False)
    results.append({"args": args, "code": code, "loaded": sorted(m for m in watch if m in sys.modules)})
with open(out, "w") as f:
    json.dump(results, f)
"""


def _run(home: Path, commands: list[list[str]], watch: tuple[str, ...], tmp_path: Path, env: dict) -> list[dict]:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(home), str(out), json.dumps(commands), json.dumps(watch)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_read_commands_never_import_torch(trained, tmp_path, clean_env):
    commands = [c for args in READ_COMMANDS for c in (args, [*args, "--json"])]
    results = _run(trained.home, commands, HEAVY, tmp_path, {**clean_env, "FORKPOINT_DATA": str(trained.data_root)})
    assert [r["args"] for r in results] == commands  # every command ran
    assert [r for r in results if r["code"] != 0] == []
    assert [r for r in results if r["loaded"]] == []  # torch/timm/safetensors never imported


def test_audit_without_data_does_not_load_the_data_layer(trained, tmp_path, clean_env):
    """audit rebuilds the trunk and every live branch (that needs torch); --no-data skips DVC and imagedata."""
    env = {**clean_env, "FORKPOINT_DATA": str(trained.data_root)}
    [result] = _run(trained.home, [["audit", "--no-data", "--json"]], ("forkpoint.imagedata", "dvc", "torch"), tmp_path, env)
    assert result["code"] == 0
    assert result["loaded"] == ["torch"]


def test_usage_errors_that_need_no_model_come_before_torch(trained, tmp_path, clean_env):
    """A missing file, a folder without class subfolders, an unknown --task, an unset token variable, a busy port:
    each is exit 2 found before torch loads (issue 29: they took 12-17 s)."""
    import socket

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(b"not read")
    labelled = tmp_path / "labelled" / "3"
    labelled.mkdir(parents=True)
    (labelled / "b.png").write_bytes(b"not read")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        commands = [
            ["predict", str(tmp_path / "missing.png")],
            ["predict", str(flat / "a.png"), "--task", "nope"],
            ["evaluate", str(tmp_path / "missing")],
            ["evaluate", str(flat)],
            ["evaluate", str(labelled.parent), "--task", "nope"],
            ["serve", "--token-env", "FORKPOINT_TEST_UNSET_TOKEN"],
            ["serve", "--port", str(busy.getsockname()[1])],
            ["serve", "--task", "nope", "--port", "0"],
        ]
        results = _run(trained.home, commands, HEAVY, tmp_path, {**clean_env, "FORKPOINT_DATA": str(trained.data_root)})
    finally:
        busy.close()
    assert [(r["args"], r["code"]) for r in results] == [(c, 2) for c in commands]
    assert [r for r in results if r["loaded"]] == []


def test_a_malformed_device_fails_while_options_are_parsed_without_torch(trained, tmp_path, clean_env):
    commands = [["predict", "x.png", "--device", "gpu"], ["evaluate", str(tmp_path), "--device", "cuda:x"],
                ["add-task", "t", "--data", "digits", "--device", "tpu"]]
    results = _run(trained.home, commands, HEAVY, tmp_path, {**clean_env, "FORKPOINT_DATA": str(trained.data_root)})
    assert [r["code"] for r in results] == [2, 2, 2] and [r for r in results if r["loaded"]] == []
