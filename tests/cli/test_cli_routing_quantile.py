"""Routing records keep the quantile they were fitted with (workflows.routing.record_from_features)."""

from __future__ import annotations

import torch

from forkpoint.workflows.routing import QUANTILE, RoutingRecord, embed, projection, record_from_features


def test_the_threshold_sits_at_the_asked_quantile_and_the_record_keeps_it():
    g = torch.Generator().manual_seed(0)
    f_train, f_val = torch.randn(60, 32, generator=g), torch.randn(40, 32, generator=g)
    y = torch.arange(60) % 3
    rec = record_from_features(f_train, y, f_val, 3, quantile=0.9)
    d = rec.distance(embed(f_val, projection(32)))
    assert abs(float((d <= 1.0).float().mean()) - 0.9) <= 1 / 40 + 1e-6  # 90% of validation images within the threshold
    again = RoutingRecord.from_dict(rec.to_dict())
    assert again.quantile == 0.9 and rec.to_dict()["quantile"] == 0.9
    assert record_from_features(f_train, y, f_val, 3).quantile == QUANTILE == 0.95


def test_a_record_stored_before_the_quantile_was_kept_reads_as_0_99():
    rec = record_from_features(torch.randn(30, 8), torch.arange(30) % 2, torch.randn(10, 8), 2).to_dict()
    rec.pop("quantile")
    assert RoutingRecord.from_dict(rec).quantile == 0.99
