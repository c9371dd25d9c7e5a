"""Ctrl-C during add-task: exit 130, one line, and nothing (not even a weights file) registered."""

from __future__ import annotations

import logging


class CtrlCWhenTrainingStarts(logging.Handler):
    """Raises KeyboardInterrupt in the main thread, exactly as Python's SIGINT handler would."""

    def emit(self, record: logging.LogRecord) -> None:
        if "phase: digits: train" in record.getMessage():
            raise KeyboardInterrupt


def test_ctrl_c_during_add_task_registers_nothing(cli):
    cli.ok("init", "--resolution", "32")
    logger = logging.getLogger("forkpoint")
    handler = CtrlCWhenTrainingStarts()
    logger.addHandler(handler)
    try:
        result = cli("-v", "add-task", "digits", "--data", "digits", "--candidates", "15:16", "--profile-epochs", "1",
                     "--limit-per-class", "4", "--epochs", "3")
    finally:
        logger.removeHandler(handler)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C): nothing was half-registered")
    assert cli.json("tasks")["tasks"] == []
    assert [e["action"] for e in cli.json("events")["events"]] == ["register_backbone"]
    assert not list((cli.home / "objects").rglob("*.safetensors"))
    assert not list((cli.home / "plots").rglob("*.png"))
