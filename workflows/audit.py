"""``forkpoint audit``: verify everything the served model depends on, and say what is wrong.

The registry re-hashes every weights file and re-reads each version's data version; on
top of that the trunk is rebuilt from its recorded source and re-fingerprinted, and
every live branch is rebuilt on it (so a branch that no longer fits is found here, not
at prediction time). ``deep`` also recomputes every version's reference outputs
(workflows/deep_audit.py): the proof that old tasks still answer as they did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forkpoint.contract.errors import ForkpointError
from forkpoint.registry import BackboneRecord, VerifyReport
from forkpoint.workflows.home import Home, rebuild_trunk
from forkpoint.workflows.live import rebuild_branch


@dataclass(frozen=True)
class AuditResult:
    report: VerifyReport
    live_checked: int
    live_problems: tuple[str, ...]
    deep: tuple | None = None  # workflows.deep_audit.VersionCheck per version, with --deep
    deep_problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> tuple[str, ...]:
        failed = tuple(c.line() for c in self.deep or () if not c.ok)
        return tuple(self.report.problems) + self.live_problems + self.deep_problems + failed

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        d = self.report.to_dict()
        d.update(ok=self.ok, problems=list(self.problems), live_branches_checked=self.live_checked)
        if self.deep is not None:
            d["reference_outputs"] = [c.to_dict() for c in self.deep]
        return d


def audit_home(home: Home, check_data: bool = True, deep: bool = False) -> AuditResult:
    """Registry verify (hashes, trunk fingerprint, DVC md5s) plus a rebuild of every live branch;
    ``deep``: every version's outputs recomputed against the ones stored when it was added."""

    def trunk_fingerprint(record: BackboneRecord) -> str:
        return rebuild_trunk(record, home.registry.load_trunk(record.fingerprint)).fingerprint()

    dvc_md5_fn = None
    if check_data:  # the data layer (DVC) is imported only when data is re-hashed
        from forkpoint.imagedata import dvc_md5

        dvc_md5_fn = dvc_md5
    report = home.registry.verify(trunk_fingerprint_fn=trunk_fingerprint, dvc_md5_fn=dvc_md5_fn)
    problems: list[str] = []
    checked = 0
    if report.ok:  # a corrupt file or a changed trunk is already reported; rebuilding on it says nothing new
        try:
            live = home.registry.live(home.fingerprint)
        except ForkpointError as exc:
            live = []
            problems.append(f"cannot load live branches: {exc}")
        for record, tensors in live:
            checked += 1
            try:
                rebuild_branch(home, record, tensors)
            except ForkpointError as exc:
                problems.append(f"{record.ref}: {exc}")
    if not deep:
        return AuditResult(report, checked, tuple(problems))
    from forkpoint.workflows.deep_audit import deep_check

    checks: tuple = ()
    deep_problems: tuple[str, ...] = ()
    try:
        checks = tuple(deep_check(home))
    except ForkpointError as exc:  # a tampered reference row or a missing probe file: said, never skipped
        deep_problems = (f"cannot recompute reference outputs: {exc}",)
    return AuditResult(report, checked, tuple(problems), checks, deep_problems)
