"""predict --route: each task's routing record is fitted once when it is added, and never changes after."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from forkpoint.workflows.routing import DIM, METHOD, RoutingRecord, decide

QUICK = ["--limit-per-class", "10", "--epochs", "1", "--patience", "0", "--branch", "15:15"]


def test_routing_records_are_stored_once_and_route_mixed_images(cli, tmp_path):
    cli.ok("init", "--resolution", "32")
    cli.ok("-q", "add-task", "digits", "--data", "digits", *QUICK)
    first = cli.json("show", "digits")["config"]["routing"]
    assert first["method"] == METHOD and first["dim"] == DIM and first["threshold"] > 0
    assert len(first["prototypes"]) == 10 and all(len(row) == DIM for row in first["prototypes"])
    cli.ok("-q", "add-task", "fashion", "--data", "fashion", *QUICK)
    assert cli.json("show", "digits")["config"]["routing"] == first  # adding a task never refits an older record

    mixed = tmp_path / "mixed"
    mixed.mkdir()  # samples --out creates its folder, never a missing parent
    for source in ("digits", "fashion"):
        cli.ok("samples", "--data", source, "--out", str(mixed / source), "--per-class", "2")
    Image.new("RGB", (64, 64), (250, 20, 200)).save(mixed / "magenta.png")  # like neither task
    out = cli.json("predict", "--route", str(mixed))
    assert out["versions"] == {"digits": 1, "fashion": 1} and out["skipped"] == []
    by_path = {Path(i["path"]).relative_to(mixed).parts[0]: [] for i in out["images"]}
    for image in out["images"]:
        by_path[Path(image["path"]).relative_to(mixed).parts[0]].append(image)
        assert set(image["distances"]) == {"digits", "fashion"}
        assert image["task"] == decide(image["distances"])
        if image["task"] is None:
            assert image["label"] is None and min(image["distances"].values()) > 1
    for source in ("digits", "fashion"):
        right = sum(i["task"] == source for i in by_path[source])
        assert right >= 0.75 * len(by_path[source]), f"{source}: {right} of {len(by_path[source])} routed home"
    classes = {t: cli.json("show", t)["class_names"] for t in ("digits", "fashion")}
    assert all(i["label"] in classes[i["task"]] for i in out["images"] if i["task"])
    [magenta] = by_path["magenta.png"]
    assert magenta["task"] is None  # "none of them"
    table = cli.ok("predict", "--route", str(mixed)).stdout
    assert "none of them" in table and "routed predictions" in table


def test_versions_without_a_record_are_not_routed():
    assert RoutingRecord.from_dict(None) is None and RoutingRecord.from_dict({"method": "other"}) is None
    assert decide({}) is None and decide({"a": 1.2, "b": 3.0}) is None and decide({"a": 0.4, "b": 0.3}) == "b"
