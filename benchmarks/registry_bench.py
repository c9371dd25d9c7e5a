"""Registry figures: time to add a version, time to load N live task versions, bytes per version.

    .venv/bin/python benchmarks/registry_bench.py [--n 20] [--db postgresql+psycopg://…] [--home DIR]

Branches are real EfficientNet-Lite0 units (timm, random init: only shapes matter to
the registry): blocks.4.1 + blocks.4.2 (≈0.34M params) plus a 10x1280 head, compared
with a full Lite0 copy (≈4.65M params) stored the same way. Each task gets distinct
random weights, so nothing is deduplicated.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch

from forkpoint.contract import BranchSpec, VersionDraft
from forkpoint.registry import Registry
from forkpoint.registry.codec import encode


def branch_tensors(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    out = {}
    for j, name in enumerate(("4.1", "4.2")):
        s, i = map(int, name.split("."))
        for k, t in model.blocks[s][i].state_dict().items():
            out[f"blocks.{j}.{k}"] = torch.randn_like(t) if t.is_floating_point() else t.clone()
    out["head.weight"] = torch.randn(10, model.num_features)
    out["head.bias"] = torch.randn(10)
    return out


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def db_bytes(reg: Registry) -> int:
    with reg.engine.connect() as c:
        if reg.engine.dialect.name == "postgresql":
            return int(c.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(f.stat().st_size for f in reg.home.glob("registry.db*"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="task versions to add and load")
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in the home)")
    ap.add_argument("--home", type=Path, default=None, help="registry home (default: a temp dir)")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="forkpoint-bench-"))

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    blocks = [f"blocks.{s}.{i}" for s, st in enumerate(model.blocks) for i in range(len(st))]
    classes = [f"c{i}" for i in range(10)]
    spec = BranchSpec(9, 11, num_classes=10, feature_dim=model.num_features)  # blocks.4.1 + blocks.4.2
    full_params = sum(t.numel() for t in model.state_dict().values())
    full_bytes = len(encode(model.state_dict()))
    fp = hashlib.sha256(b"bench-trunk").hexdigest()

    reg = Registry.open(home, args.db)
    reg.register_backbone("tf_efficientnet_lite0", "timm:random-init", fp, blocks, 224, [0.5] * 3, [0.5] * 3)
    db0, obj0 = db_bytes(reg), dir_bytes(reg.store.root)
    profile = [{"start": s, "stop": s + 1, "val_acc": 0.5 + s / 40, "seconds": 3.2} for s in range(15)]
    add_s = []
    for k in range(args.n):
        tensors = branch_tensors(model, k)
        t0 = time.perf_counter()
        draft = VersionDraft(
            backbone_fingerprint=fp, class_names=tuple(classes), spec=spec, block_names=tuple(blocks), tensors=tensors,
            metrics={"val_acc": 0.9, "test_acc": 0.89, "per_class": {c: 0.9 for c in classes}}, profile=tuple(profile),
            config={"lr": 0.01, "epochs": 10, "batch_size": 64, "optimizer": "adamw"},
            data_md5="0123456789abcdef0123456789abcdef.dir", data_path=f"data/task-{k:02d}", split_seed=k,
            split_sizes={"train": 4000, "val": 500, "test": 500}, trainable_params=sum(t.numel() for t in tensors.values()),
            total_params=full_params, extra_cost_pct=30.0,
        )
        reg.add_version(f"task-{k:02d}", draft)
        add_s.append(time.perf_counter() - t0)
    branch_params = sum(t.numel() for t in branch_tensors(model, 0).values())

    t0 = time.perf_counter()
    live = reg.live(fp)
    load_s = time.perf_counter() - t0
    assert len(live) == args.n

    db1, obj1 = db_bytes(reg), dir_bytes(reg.store.root)
    per_db, per_obj = (db1 - db0) / args.n, (obj1 - obj0) / args.n
    backend = reg.engine.dialect.name
    reg.close()
    print(f"backend            {backend}  ({'default home' if args.db is None else 'URL'}; {os.cpu_count()} CPUs; python {sys.version.split()[0]})")
    print(f"branch             {branch_params:,} params (blocks.4.1+4.2 + 10x1280 head)")
    print(f"add a version      median {statistics.median(add_s) * 1e3:.1f} ms, max {max(add_s) * 1e3:.1f} ms (n={args.n})")
    print(f"load {args.n} live      {load_s * 1e3:.1f} ms total, {load_s / args.n * 1e3:.1f} ms per version (sha256-checked)")
    print(f"per version        {per_obj / 1e6:.3f} MB objects + {per_db / 1e3:.1f} kB database = {(per_obj + per_db) / 1e6:.3f} MB")
    print(f"full Lite0 copy    {full_params:,} params, {full_bytes / 1e6:.2f} MB as safetensors "
          f"({(per_obj + per_db) / full_bytes * 100:.1f}% of it per version)")


if __name__ == "__main__":
    main()
