"""Issue 29: a mistyped ``--db sqlite:///new.db`` on a read command creates no database file.

Reads fail with exit 2 naming the URL and the fix; ``init`` still creates the file it is given.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from forkpoint.registry import Registry
from forkpoint.registry.errors import DatabaseUnavailableError


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return path


def _reads(tmp: Path) -> list[list[str]]:
    img = _image(tmp / "in" / "a.png")
    _image(tmp / "labelled" / "cat" / "b.png")
    _image(tmp / "labelled" / "dog" / "c.png")
    return [["tasks"], ["events"], ["events", "--task", "pets"], ["show", "pets"], ["history", "pets"],
            ["diff", "pets", "1", "2"], ["audit", "--no-data"], ["info"], ["reproduce", "pets"],
            ["predict", str(img)], ["evaluate", str(tmp / "labelled")], ["export", "--out", str(tmp / "m.onnx")]]


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_read_commands_never_create_a_database(cli, one_line_error, tmp_path, monkeypatch, relative):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = work / "new.db"
    url = "sqlite:///new.db" if relative else f"sqlite:///{db}"
    for args in _reads(tmp_path):
        line = one_line_error(cli("--db", url, *args))
        assert f"no registry at {url}" in line and "forkpoint init" in line and "--db" in line, (args, line)
        assert not db.exists(), f"`forkpoint {' '.join(args)}` created {db}"
    assert sorted(p.name for p in work.iterdir()) == []


def test_the_registry_api_opens_read_only_on_request(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with pytest.raises(DatabaseUnavailableError, match="no registry at"):
        Registry.open(tmp_path / "home", url, create=False)
    with pytest.raises(DatabaseUnavailableError, match="no registry at"):
        Registry.open(tmp_path / "home2", create=False)  # the home's default file
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "home2").exists()
    Registry.open(tmp_path / "home", url).close()  # the writers' path still creates
    assert (tmp_path / "r.db").is_file()
    Registry.open(tmp_path / "home", url, create=False).close()  # and then a reader opens it


def test_init_still_creates_the_database_it_is_given(cli, tmp_path):
    db = tmp_path / "made.db"
    cli.ok("--db", f"sqlite:///{db}", "init", "--resolution", "32")
    assert db.is_file()
    assert "no tasks yet" in cli.ok("--db", f"sqlite:///{db}", "tasks").stdout
