"""Registering, reading and retiring frozen trunks: a mixin of :class:`forkpoint.registry.core.Registry`.

A trunk is identified by its fingerprint; registering the same one twice is a no-op (or
attaches its tensors once), a different description under one fingerprint is refused.
Its tensors, when stored, go through the same claim-then-put path as branch weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from forkpoint.registry import chain, claims, validate
from forkpoint.registry.codec import decode, encode
from forkpoint.registry.errors import BackboneMismatchError, ConcurrencyError, InvalidInputError
from forkpoint.registry.models import Backbone, Task
from forkpoint.registry.provenance import default_actor
from forkpoint.registry.records import BackboneRecord
from forkpoint.registry.parts import RegistryParts, now
from forkpoint.registry.versions import MAX_ATTEMPTS, backoff as _backoff

if TYPE_CHECKING:
    import torch



class BackbonesMixin(RegistryParts):
    """``register_backbone``, ``retire_backbone``, ``backbones``, ``backbone``, ``load_trunk``."""

    def register_backbone(
        self,
        arch: str,
        weights_source: str,
        fingerprint: str,
        block_names: Sequence[str],
        resolution: int,
        mean: Sequence[float],
        std: Sequence[float],
        trunk_tensors: dict[str, torch.Tensor] | None = None,
        actor: str | None = None,
    ) -> BackboneRecord:
        """Record a frozen trunk. Idempotent for the same fingerprint and description;
        a second call may attach the trunk tensors if the first did not."""
        fp = validate.fingerprint(fingerprint)
        if not isinstance(arch, str) or not arch or not isinstance(weights_source, str):
            raise InvalidInputError(f"arch {arch!r} / weights_source {weights_source!r} is not usable: pass non-empty strings")
        blocks = list(block_names) if isinstance(block_names, (list, tuple)) else None
        if not blocks or not all(isinstance(b, str) and b for b in blocks) or len(set(blocks)) != len(blocks):
            raise InvalidInputError(f"block_names {block_names!r} is not usable: pass the backbone's unit names as a non-empty list of distinct strings")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
            raise InvalidInputError(f"resolution {resolution!r} is not usable: pass the input size in pixels as a positive integer")
        norm = {}
        for what, vals in (("mean", mean), ("std", std)):
            if not isinstance(vals, (list, tuple)) or len(vals) != 3:
                raise InvalidInputError(f"{what} {vals!r} is not usable: pass 3 numbers, one per RGB channel")
            norm[what] = [validate.finite_float(what, v) for v in vals]
        if any(v <= 0 for v in norm["std"]):
            raise InvalidInputError(f"std {list(std)!r} has a non-positive entry: pass the normalisation std (all > 0)")
        actor = actor or default_actor()

        trunk_sha = trunk_bytes = claim_id = None
        if trunk_tensors is not None:
            data = encode(trunk_tensors)
            (trunk_sha, claim_id), trunk_bytes = self._put_claimed(data, actor), len(data)
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with self._write() as s:
                        if claim_id is not None:
                            claims.release(s, claim_id)
                        chain.lock(s)  # before any row lock: one lock order for every writer
                        row = self._record_backbone(s, fp, arch, weights_source, blocks, resolution, norm,
                                                    trunk_sha, trunk_bytes, actor)
                        s.commit()
                        claim_id = None
                        return BackboneRecord.of(row)
                except IntegrityError:
                    _backoff(attempt)
        finally:
            if claim_id is not None:
                self._release_claim(claim_id)
        raise ConcurrencyError(f"could not register backbone {fp[:12]}… after {MAX_ATTEMPTS} attempts: retry")

    def _record_backbone(self, s: Session, fp: str, arch: str, weights_source: str, blocks: list[str], resolution: int,
                         norm: dict[str, list[float]], trunk_sha: str | None, trunk_bytes: int | None, actor: str) -> Backbone:
        row = s.exec(select(Backbone).where(Backbone.fingerprint == fp)).first()
        if row is None:
            row = Backbone(
                fingerprint=fp, arch=arch, weights_source=weights_source, num_blocks=len(blocks),
                block_names=blocks, resolution=resolution, mean=norm["mean"], std=norm["std"],
                trunk_sha256=trunk_sha, trunk_bytes=trunk_bytes, actor=actor, created_at=now(),
            )
            s.add(row)
            self._log(s, actor, "register_backbone", f"backbone:{fp}", details={
                "arch": arch, "weights_source": weights_source, "num_blocks": len(blocks), "trunk_sha256": trunk_sha,
            })
            return row
        mine = (arch, blocks, resolution, norm["mean"], norm["std"])
        theirs = (row.arch, list(row.block_names), row.resolution, list(row.mean), list(row.std))
        if mine != theirs:
            raise BackboneMismatchError(
                f"fingerprint {fp[:12]}… is already registered as {row.arch} ({row.num_blocks} blocks, {row.resolution}px) with different settings: a fingerprint must identify one trunk"
            )
        if trunk_sha and row.trunk_sha256 and row.trunk_sha256 != trunk_sha:
            raise BackboneMismatchError(
                f"backbone {fp[:12]}… already stores trunk {row.trunk_sha256[:12]}…, not {trunk_sha[:12]}…: these are different tensors under one fingerprint"
            )
        if trunk_sha and not row.trunk_sha256:
            row.trunk_sha256, row.trunk_bytes = trunk_sha, trunk_bytes
            s.add(row)
            self._log(s, actor, "attach_trunk", f"backbone:{fp}", details={"trunk_sha256": trunk_sha})
        return row

    def retire_backbone(self, fingerprint: str, reason: str, actor: str | None = None) -> None:
        """Remove a trunk no task uses (e.g. a random-init one registered by mistake); logged.

        Its stored trunk object becomes unreferenced, so ``gc`` removes it later."""
        fp = validate.fingerprint(fingerprint)
        actor = actor or default_actor()
        with self._write() as s:
            chain.lock(s)
            row = self._backbone_row(s, fp)
            used = s.exec(select(Task.name).where(Task.backbone_id == row.id)).all()
            if used:
                raise InvalidInputError(f"backbone {fp[:12]}… serves task(s) {', '.join(used)}: a trunk with tasks cannot be retired")
            self._log(s, actor, "retire_backbone", f"backbone:{fp}", details={"arch": row.arch, "reason": reason,
                                                                             "weights_source": row.weights_source})
            s.delete(row)
            s.commit()

    def backbones(self) -> list[BackboneRecord]:
        with self._read() as s:
            return [BackboneRecord.of(b) for b in s.exec(select(Backbone).order_by(Backbone.id)).all()]

    def backbone(self, fingerprint: str) -> BackboneRecord:
        with self._read() as s:
            return BackboneRecord.of(self._backbone_row(s, fingerprint))

    def load_trunk(self, fingerprint: str) -> dict[str, torch.Tensor] | None:
        """The stored trunk tensors (sha256-checked), or None if none were stored."""
        b = self.backbone(fingerprint)
        if not b.trunk_sha256:
            return None
        return decode(self.store.get(b.trunk_sha256, used_by=f"trunk of backbone {b.fingerprint[:12]}…"))
