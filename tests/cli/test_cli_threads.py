"""The thread count follows the cores busy *now* (a /proc/stat sample), not the lagging load average."""

from __future__ import annotations

import os

from forkpoint.workflows import threads


def _stat(tmp_path, name: str, total_idle: list[int]) -> str:
    path = tmp_path / name
    user, idle = total_idle
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n")
    return str(path)


def test_busy_cores_reads_the_share_of_non_idle_time(tmp_path, monkeypatch):
    samples = iter([(2000, 1000), (2400, 1300)])  # 400 jiffies between the reads, 300 of them idle
    monkeypatch.setattr(threads, "_cpu_times", lambda path="/proc/stat": next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert abs(threads.busy_cores() - 0.25 * (os.cpu_count() or 1)) < 1e-9


def test_the_proc_stat_format_is_parsed(tmp_path):
    path = _stat(tmp_path, "stat", [120, 880])
    assert threads._cpu_times(path) == (1000, 880)
    assert threads._cpu_times(str(tmp_path / "missing")) is None


def test_idle_cores_now_win_over_a_high_load_average(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.35, 1.0, 1.0))
    assert threads.pick_threads() == (os.cpu_count() or 1)


def test_without_proc_stat_the_load_average_decides(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert threads.pick_threads() == 1 and threads.pick_threads(4) == 4
