"""Bad input: a one-line error naming the problem and the fix, and nothing written."""

from __future__ import annotations

import math

import pytest
import torch

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
    "end past the last block", "start after end", "stop disagrees with end", "head-only but with blocks", "negative start", "names of other blocks",
    "names from another backbone", "head rows != classes", "head cols != feature_dim",
    "num_classes != class names", "missing key", "siamese not bool",
]


def _bad_branches(sample):
    spec = sample.spec
    return {
        "end past the last block": spec(14, 16),
        "start after end": {**spec(), "start": 12, "end": 11},
        "stop disagrees with end": {**spec(), "stop": 11},
        "head-only but with blocks": {**spec(), "start": 16, "end": 15},
        "negative start": {**spec(), "start": -1},
        "names of other blocks": {**spec(), "block_names": ["blocks.4.0", "blocks.4.1", "blocks.4.2"]},
        "names from another backbone": {**spec(), "block_names": ["layer3.0", "layer3.1", "layer3.2"]},
        "head rows != classes": {**spec(), "head_shape": [4, 16]},
        "head cols != feature_dim": {**spec(), "head_shape": [3, 32]},
        "num_classes != class names": {**spec(), "num_classes": 4, "head_shape": [4, 16]},
        "missing key": {k: v for k, v in spec().items() if k != "siamese"},
        "siamese not bool": {**spec(), "siamese": "yes"},
    }


@pytest.mark.parametrize("case", BAD_BRANCH_CASES)
def test_branch_that_does_not_fit_the_trunk(reg, ready, case):
    before = ready.snapshot()
    with pytest.raises(BranchSpecError) as e:
        ready.add("pets", branch=_bad_branches(ready)[case])
    _one_line(e)
    assert ready.snapshot() == before


def test_weights_that_disagree_with_the_spec_or_are_broken(reg, ready):
    before = ready.snapshot()
    no_head = {k: v for k, v in ready.tensors(0).items() if k != "head.weight"}
    with pytest.raises(BranchSpecError, match="head_shape"):
        ready.add("pets", tensors=no_head)
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
    siamese = ready.add("pets", branch={**ready.spec(siamese=True), "head_shape": [3, 32]},
                        tensors={**ready.tensors(0), "head.weight": torch.zeros(3, 32)})
    assert siamese.siamese and siamese.head_shape == (3, 32)
    probe = ready.add("probe", branch={**ready.spec(), "start": 16, "stop": 16, "end": 15, "block_names": []},
                      tensors={"head.weight": torch.zeros(3, 16), "head.bias": torch.zeros(3)})
    assert (probe.branch_start, probe.branch_end, probe.block_names) == (16, 15, ())


def test_learner_branch_spec_dicts_are_accepted(reg, ready):
    """Contract with the learner: BranchSpec.to_dict() is what add_version receives."""
    from forkpoint.learner.branch import BranchSpec

    for spec, head in ((BranchSpec(9, 12, 3, 16), (3, 16)), (BranchSpec(0, 16, 3, 16, siamese=True), (3, 32)),
                       (BranchSpec(16, 16, 3, 16), (3, 16))):
        rec = ready.add(f"t{spec.start}-{spec.stop}", branch=spec.to_dict(list(ready.blocks)),
                        tensors={"head.weight": torch.zeros(*head)})
        assert (rec.branch_start, rec.branch_end, rec.head_shape) == (spec.start, spec.end, head)
        assert BranchSpec.from_dict(rec.branch) == spec


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
])
def test_unstorable_values(reg, ready, field, value, match):
    before = ready.snapshot()
    with pytest.raises(InvalidInputError, match=match) as e:
        ready.add("pets", **{field: value})
    _one_line(e)
    assert ready.snapshot() == before


def test_unwritable_object_store_writes_no_rows(reg, ready):
    from forkpoint.registry import StoreWriteError
    from forkpoint.registry.codec import encode, sha256

    fanout = reg.store.root / sha256(encode(ready.tensors(0)))[:2]
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
