"""Bad input: a one-line error naming the problem and the fix, and nothing written."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from forkpoint.contract import BranchSpec
from forkpoint.contract.errors import ForkpointError
from forkpoint.registry import (
    BackboneMismatchError,
    BranchSpecError,
    ClassNamesMismatchError,
    DatabaseUnavailableError,
    InvalidInputError,
    InvalidNameError,
    Registry,
    UnknownBackboneError,
    UnknownTaskError,
    UnknownVersionError,
)


def _one_line(exc: pytest.ExceptionInfo) -> None:
    assert isinstance(exc.value, ForkpointError) and exc.value.exit_code != 0
    msg = str(exc.value)
    assert "\n" not in msg and ":" in msg, msg  # "<problem>: <fix>"


@pytest.mark.parametrize("name", ["", "Pets", "a/b", "../etc", "..", ".", "-x", "_x", "a\\b", "a b", "x" * 65, "pets\n", 7])
def test_invalid_task_names_write_nothing(reg, ready, name):
    before = ready.snapshot()
    with pytest.raises(InvalidNameError) as e:
        ready.add(name)
    _one_line(e)
    assert ready.snapshot() == before


def test_valid_names_at_the_edges(reg, ready):
    for name in ("a", "0", "x" * 64, "cifar10.v2_small-1"):
        assert ready.add(name).task == name


def test_unknown_task_and_version(reg, ready):
    ready.add("pets", promote=False)
    cases = [
        (UnknownTaskError, lambda: reg.show("nope")),
        (UnknownTaskError, lambda: reg.load_tensors("nope")),
        (UnknownTaskError, lambda: reg.promote("nope", 1)),
        (UnknownTaskError, lambda: reg.history("nope")),
        (UnknownVersionError, lambda: reg.show("pets", 2)),
        (UnknownVersionError, lambda: reg.show("pets")),  # no live version yet
        (UnknownVersionError, lambda: reg.load_tensors("pets", 0)),
        (UnknownVersionError, lambda: reg.promote("pets", 5)),
        (UnknownVersionError, lambda: reg.rollback("pets")),
        (UnknownVersionError, lambda: reg.diff("pets", 1, 3)),
        (UnknownVersionError, lambda: ready.add("pets", parent_version=9)),
        (UnknownVersionError, lambda: ready.add("new-task", parent_version=1)),
    ]
    before = ready.snapshot()
    for exc_type, call in cases:
        with pytest.raises(exc_type) as e:
            call()
        _one_line(e)
    assert ready.snapshot() == before
    with pytest.raises(UnknownVersionError, match=r"versions are 1\.\.1"):
        reg.show("pets", 2)


def test_wrong_backbone(reg, ready):
    ready.add("pets")
    before = ready.snapshot()
    with pytest.raises(UnknownBackboneError, match="register the backbone") as e:
        ready.add("pets", backbone_fingerprint=ready.other_fingerprint)
    _one_line(e)
    with pytest.raises(InvalidInputError, match="64 lower-case hex"):
        ready.add("pets", backbone_fingerprint="abc")
    with pytest.raises(UnknownBackboneError):
        reg.live(backbone_fingerprint=ready.other_fingerprint)
    assert ready.snapshot() == before
    ready.backbone(fingerprint=ready.other_fingerprint)
    before = ready.snapshot()
    with pytest.raises(BackboneMismatchError, match="belongs to backbone") as e:
        ready.add("pets", backbone_fingerprint=ready.other_fingerprint)
    _one_line(e)
    with pytest.raises(ClassNamesMismatchError, match="new task"):
        ready.add("pets", class_names=["cat", "dog", "wolf"])
    assert ready.snapshot() == before


BAD_BRANCH_CASES = [
    "stop past the last block", "start after stop", "empty range before the last block", "negative start",
    "start not an integer", "names from another backbone", "one block name missing", "num_classes != class names",
    "feature_dim not positive", "siamese not bool", "legacy dict instead of a BranchSpec",
]


def _bad_drafts(sample) -> dict:
    spec, draft = sample.spec, sample.draft
    return {
        "stop past the last block": draft(spec=spec(14, 17)),
        "start after stop": draft(spec=spec(12, 11)),
        "empty range before the last block": draft(spec=spec(5, 5)),  # head-only is start == stop == 16
        "negative start": draft(spec=spec(-1, 12)),
        "start not an integer": draft(spec=BranchSpec("9", 12, 3, 16)),
        "names from another backbone": draft(block_names=[f"layer{i}" for i in range(16)]),
        "one block name missing": draft(block_names=sample.blocks[:-1]),
        "num_classes != class names": draft(spec=spec(n_classes=4), tensors=sample.tensors(0, n_classes=4)),
        "feature_dim not positive": draft(spec=spec(feature_dim=0)),
        "siamese not bool": draft(spec=BranchSpec(9, 12, 3, 16, "yes")),  # type: ignore[arg-type]
        "legacy dict instead of a BranchSpec": replace(draft(), spec={"start": 9, "end": 11, "num_classes": 3, "feature_dim": 16}),
    }


@pytest.mark.parametrize("case", BAD_BRANCH_CASES)
def test_branch_that_does_not_fit_the_trunk(reg, ready, case):
    before = ready.snapshot()
    with pytest.raises(BranchSpecError) as e:
        reg.add_version("pets", _bad_drafts(ready)[case])
    _one_line(e)
    assert ready.snapshot() == before


def test_weights_that_disagree_with_the_spec_or_are_broken(reg, ready):
    before = ready.snapshot()
    no_head = {k: v for k, v in ready.tensors(0).items() if k != "head.weight"}
    with pytest.raises(BranchSpecError, match="head_shape"):
        ready.add("pets", tensors=no_head)
    with pytest.raises(BranchSpecError, match=r"head_shape \[3, 16\]"):  # head cols != feature_dim
        ready.add("pets", tensors={**ready.tensors(0), "head.weight": torch.zeros(3, 32)})
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for bad in (math.nan, math.inf):
            broken = {**ready.tensors(0), "head.bias": torch.tensor([0.0, bad, 1.0], dtype=dtype)}
            with pytest.raises(InvalidInputError, match="NaN or inf"):
                ready.add("pets", tensors=broken)
    with pytest.raises(InvalidInputError, match="non-empty dict"):
        ready.add("pets", tensors={})
    with pytest.raises(InvalidInputError, match="not str -> torch.Tensor"):
        ready.add("pets", tensors={"head.weight": [[0.0] * 16] * 3})
    assert ready.snapshot() == before
    siamese = ready.add("pets", spec=ready.spec(siamese=True), tensors={**ready.tensors(0), "head.weight": torch.zeros(3, 32)})
    assert siamese.siamese and siamese.head_shape == (3, 32) and siamese.spec.head_in == 32
    probe = ready.add("probe", spec=ready.spec(16, 16), tensors={"head.weight": torch.zeros(3, 16), "head.bias": torch.zeros(3)})
    assert (probe.branch_start, probe.branch_stop, probe.block_names) == (16, 16, ())
    assert probe.spec.is_probe and probe.branch["block_names"] == [] and "end" not in probe.branch


def test_learner_drafts_are_accepted(reg, ready):
    """Contract with the learner: what TaskReport.draft() builds is what add_version takes, unchanged."""
    from forkpoint.learner.task import TaskReport

    for spec, head in ((BranchSpec(9, 12, 3, 16), (3, 16)), (BranchSpec(0, 16, 3, 16, siamese=True), (3, 32)),
                       (BranchSpec(16, 16, 3, 16), (3, 16))):
        report = TaskReport(
            name="t", class_names=list(ready.classes), spec=spec, block_names=list(ready.blocks), profile=[], greedy=[],
            val_acc=0.5, test_acc=None, per_class_test_acc={}, trainable_params=10, total_params=100, extra_cost_pct=1.5,
            split_sizes={"train": 6, "val": 3, "test": 0}, timings={"total_s": 1.0}, device="cpu", config={"split_seed": 4},
        )
        draft = report.draft(ready.fingerprint, {"head.weight": torch.zeros(*head)}, data_md5=None, data_path=None,
                             description="from a report", run_id="r1", config={"data": {"source": "test"}})
        rec = reg.add_version(f"t{spec.start}-{spec.stop}", draft)
        assert rec.spec == spec and rec.head_shape == head and rec.branch == spec.to_dict(list(ready.blocks))
        assert (rec.split_seed, rec.run_id, rec.description) == (4, "r1", "from a report")
        assert rec.config == {"split_seed": 4, "data": {"source": "test"}} and rec.metrics["timings"] == {"total_s": 1.0}


def test_something_that_is_not_a_draft_writes_nothing(reg, ready):
    before = ready.snapshot()
    with pytest.raises(InvalidInputError, match="VersionDraft") as e:
        reg.add_version("pets", ready.kwargs())  # the fields, but not a draft
    _one_line(e)
    assert ready.snapshot() == before


@pytest.mark.parametrize("field, value, match", [
    ("metrics", {"val_acc": math.nan}, "JSON"),
    ("config", {"device": torch.device("cpu")}, "JSON"),
    ("profile", {"start": 9}, "list of dicts"),
    ("trainable_params", -1, "non-negative"),
    ("trainable_params", 10_000_000, "exceeds total_params"),
    ("extra_cost_pct", math.inf, "finite"),
    ("split_seed", "0", "integer"),
    ("class_names", ["cat", "cat", "fox"], "distinct"),
    ("data_md5", "", "non-empty"),
    ("parent_version", "1", "version number"),
])
def test_unstorable_values(reg, ready, field, value, match):
    before = ready.snapshot()
    with pytest.raises(InvalidInputError, match=match) as e:
        ready.add("pets", **{field: value})
    _one_line(e)
    assert ready.snapshot() == before


def test_unwritable_object_store_writes_no_rows(reg, ready):
    from forkpoint.registry import StoreWriteError

    fanout = reg.store.root / ready.file_digest("pets", 1, 0)[:2]
    fanout.parent.mkdir(parents=True, exist_ok=True)
    fanout.write_bytes(b"a file where the fan-out directory should be")  # root ignores chmod; this cannot be bypassed
    before = ready.snapshot()
    with pytest.raises(StoreWriteError, match="check free space and permissions") as e:
        ready.add("pets", seed=0)
    _one_line(e)
    assert ready.snapshot() == before


@pytest.mark.parametrize("url, match", [
    ("postgresql+psycopg://nobody@127.0.0.1:1/nodb", "cannot connect"),
    ("not a url", "cannot parse"),
    ("mysql://u@localhost/db", "unsupported database"),
    ("sqlite:////nonexistent-dir/x/registry.db", "does not exist"),
])
def test_database_url_that_cannot_connect(tmp_path, url, match):
    home = tmp_path / "home"
    with pytest.raises(DatabaseUnavailableError, match=match) as e:
        Registry.open(home, url)
    _one_line(e)
    assert not home.exists()


def test_password_is_not_echoed(tmp_path):
    with pytest.raises(DatabaseUnavailableError) as e:
        Registry.open(tmp_path, "postgresql+psycopg://u:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(e.value) and "***" in str(e.value)


def test_database_that_is_not_a_registry(tmp_path):
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        c.execute("INSERT INTO alembic_version VALUES ('9999')")
    with pytest.raises(DatabaseUnavailableError, match="cannot migrate") as e:
        Registry.open(tmp_path / "home", f"sqlite:///{db}")
    _one_line(e)
