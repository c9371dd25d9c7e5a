"""The head is the joint ridge solution over every task's images, whatever order the tasks came in."""

from __future__ import annotations

import itertools

import pytest
import torch

from forkpoint.learner.agnostic import AgnosticHead, HeadConfig, choose_lambda, projection, random_features, task_statistics
from forkpoint.workflows.routing import trunk_features

TASKS = {"low": (0, 1, 2), "mid": (3, 4, 5, 6), "high": (7, 8, 9)}
CFG = HeadConfig(dim=256)


@pytest.fixture(scope="module")
def features(lite0_32, make_digits):
    """Per task: (fit features, fit labels, val features, val labels, classes) from real digits through real Lite0."""
    out = {}
    for name, classes in TASKS.items():
        d = make_digits(classes)
        out[name] = (trunk_features(lite0_32, d.train.images), torch.as_tensor(d.train.labels),
                     trunk_features(lite0_32, d.val.images), torch.as_tensor(d.val.labels), len(classes))
    return out


@pytest.fixture(scope="module")
def stats(features, lite0_32):
    proj = projection(lite0_32.num_features, CFG.dim, CFG.seed)
    return proj, {n: task_statistics(*f, proj=proj) for n, f in features.items()}


def _by_class(head: AgnosticHead) -> dict[tuple[str, int], torch.Tensor]:
    return {c: head.weights[:, j] for j, c in enumerate(head.classes)}


def test_every_order_gives_the_same_head(stats):
    proj, st = stats
    heads = [AgnosticHead.build([(n, st[n]) for n in order], proj, CFG) for order in itertools.permutations(st)]
    first = _by_class(heads[0])
    assert len({h.selection.lam for h in heads}) == 1  # lambda chosen on validation is order-invariant too
    for h in heads[1:]:
        assert h.tasks != heads[0].tasks or h is heads[0]
        for key, w in _by_class(h).items():
            torch.testing.assert_close(w, first[key], rtol=1e-9, atol=1e-12)


def test_the_head_is_the_joint_ridge_solution(stats, features):
    """Summed per-task statistics equal one ridge fit on all images at once (fit + validation)."""
    proj, st = stats
    head = AgnosticHead.build([(n, st[n]) for n in TASKS], proj, CFG)
    h = torch.cat([random_features(torch.cat([f[0], f[2]]), proj) for f in features.values()])
    k = sum(f[4] for f in features.values())
    y, offset, rows = torch.zeros(len(h), k, dtype=torch.float64), 0, 0
    for f in features.values():
        labels = torch.cat([f[1], f[3]])
        y[torch.arange(rows, rows + len(labels)), offset + labels] = 1
        rows, offset = rows + len(labels), offset + f[4]
    joint = torch.linalg.solve(h.T @ h + head.selection.lam * torch.eye(h.shape[1], dtype=torch.float64), h.T @ y)
    torch.testing.assert_close(head.weights, joint, rtol=1e-7, atol=1e-9)


def test_lambda_minimises_the_validation_error_computed_directly(stats, features):
    """The MSE read off accumulated statistics is the MSE of the fit-only head on the validation images."""
    proj, st = stats
    sel = choose_lambda(list(st.values()), CFG.lambdas)
    hf = torch.cat([random_features(f[0], proj) for f in features.values()])
    hv = torch.cat([random_features(f[2], proj) for f in features.values()])
    k = sum(f[4] for f in features.values())

    def onehot(index):
        ys, off = [], 0
        for f in features.values():
            ys.append(torch.nn.functional.one_hot(f[index] + off, k).double())
            off += f[4]
        return torch.cat(ys)

    yf, yv = onehot(1), onehot(3)
    direct = {}
    for lam in CFG.lambdas:
        w = torch.linalg.solve(hf.T @ hf + lam * torch.eye(hf.shape[1], dtype=torch.float64), hf.T @ yf)
        direct[lam] = float(((hv @ w - yv) ** 2).mean())
    for lam in CFG.lambdas:
        assert sel.val_mse[lam] == pytest.approx(direct[lam], rel=1e-6)
    assert sel.lam == min(direct, key=direct.get) and sel.val_images == len(hv)


def test_statistics_survive_safetensors(stats):
    from forkpoint.learner.agnostic import TaskStatistics
    from forkpoint.registry.codec import decode, encode

    _, st = stats
    back = TaskStatistics.from_tensors(decode(encode(st["low"].to_tensors())))
    assert all(torch.equal(a, b) for a, b in zip(back.to_tensors().values(), st["low"].to_tensors().values()))
