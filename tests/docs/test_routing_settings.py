"""The routing-settings study: its selection rule, and that its keywords leave the shipped record as it was."""

from __future__ import annotations

import torch

from forkpoint.benchmarks.routing_settings import SHIPPED, TIE, choose, grid
from forkpoint.workflows.routing import METHOD, RoutingRecord, embed, projection, record_from_features


def _score(dim: int, right: float, isotropic: bool = False, normalise: bool = True) -> dict:
    return {"setting": {"dim": dim, "isotropic": isotropic, "normalise": normalise}, "select": {"routed_right": right}}


def test_the_best_share_wins_and_a_tie_goes_to_fewer_dimensions_then_to_the_shipped_setting():
    assert choose([_score(64, 0.80), _score(128, 0.90)])["dim"] == 128  # a clear win
    assert choose([_score(64, 0.90 - TIE / 2), _score(256, 0.90)])["dim"] == 64  # within the tie: the smaller record
    tied = choose([_score(64, 0.9, isotropic=True), _score(64, 0.9), _score(128, 0.9)])
    assert tied == SHIPPED
    assert SHIPPED in grid() and len(grid()) == len({tuple(s.items()) for s in grid()})


def test_default_keywords_fit_the_record_the_shipped_path_fits():
    g = torch.Generator().manual_seed(0)
    f_train, f_val = torch.randn(60, 40, generator=g), torch.randn(20, 40, generator=g)
    y = torch.arange(60) % 3
    rec = record_from_features(f_train, y, f_val, 3)
    # the shipped definition, written out: L2-normalised, projected to 64 dims, diagonal spread
    z = embed(f_train, projection(40))
    protos = torch.stack([z[y == c].mean(0) for c in range(3)])
    spread = (z - protos[y]).pow(2).mean(0).sqrt() + 1e-6
    d_val = RoutingRecord(protos, spread, 1.0, 20).distance(embed(f_val, projection(40)))
    assert rec.method == METHOD and rec.dim == 64 and torch.equal(rec.prototypes, protos) and torch.equal(rec.scale, spread)
    assert rec.threshold == float(torch.quantile(d_val, rec.quantile))
    iso = record_from_features(f_train, y, f_val, 3, dim=32, isotropic=True)
    assert iso.dim == 32 and iso.prototypes.shape == (3, 32) and torch.unique(iso.scale).numel() == 1
    raw = record_from_features(f_train, y, f_val, 3, normalise=False)
    assert RoutingRecord.from_dict(raw.to_dict()) is None  # the L2-off alternative is never served
