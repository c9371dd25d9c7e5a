#!/usr/bin/env python3
"""Peak memory (max RSS) of `forkpoint predict` on a folder of very large images.

Why: predict used to decode every image at full size (10000x10000 RGB = 300 MB as uint8,
3.7 GB once turned into float tensors) and to hold a whole batch of them at once. This
script reproduces the figure quoted in issue 13 so anyone can check the bound:

    .venv/bin/python scripts/predict-memory.py                 # 64 images of 10000x10000 px
    .venv/bin/python scripts/predict-memory.py --images 8 --side 6000

It writes the images (cheap-to-compress PNGs, regenerated only when missing) and a small
home with one task (built-in digits, 5 images per class, one epoch) under --work, then runs
`forkpoint predict` in a child process and reports the child's peak resident set size.
Nothing is written into the repository.

Measured on a 2-core x86_64 box (23 GiB RAM), 64 images of 10000x10000 px at 224 px:
before the fix 3.3 GiB for one image plus 0.29 GiB per further image (16 images: 7.6 GiB;
64 would need ~22 GiB; under --cap-gib 12 it dies with MemoryError at 9.1 GiB); after it
1.9 GiB, the same as 64 images of 500x500 px (the batch's forward pass, not decoding).
Use --cap-gib when measuring an unbounded version on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

FORKPOINT = [sys.executable, "-c", "import sys; from forkpoint.cli import main; sys.exit(main())"]
# Runs one command and prints its peak RSS (KiB): the only child of a fresh interpreter, so no
# other process (init, add-task, this script) can own the figure.
# argv[1]: an address-space cap in bytes for the child (0: none).
MEASURE = (
    "import resource, subprocess, sys\n"
    "cap = int(sys.argv[1])\n"
    "if cap: resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
    "rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def make_images(folder: Path, count: int, side: int) -> None:
    """``count`` PNGs of side x side px: a colour gradient (compresses to a few MB, decodes to full size)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "img_000.png"
    if not first.is_file():
        ramp = Image.linear_gradient("L").resize((side, side))
        Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), ramp.point(lambda v: 255 - v))).save(
            first, compress_level=1)
    for i in range(1, count):
        target = folder / f"img_{i:03d}.png"
        if not target.is_file():
            shutil.copyfile(first, target)
    for extra in folder.glob("img_*.png"):  # a smaller --images run must not predict leftovers
        if int(extra.stem.rsplit("_", 1)[1]) >= count:
            extra.unlink()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([*FORKPOINT, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"forkpoint {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc


def make_home(work: Path, resolution: int, env: dict[str, str]) -> Path:
    home = work / f"home-{resolution}"
    if not (home / "registry.db").is_file():
        run(["--home", str(home), "init", "--resolution", str(resolution)], env)
        run(["--home", str(home), "-q", "add-task", "digits", "--data", "digits", "--data-root", str(work / "data"),
             "--limit-per-class", "5", "--epochs", "1", "--patience", "0", "--branch", "15:15"], env)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--side", type=int, default=10000)
    parser.add_argument("--resolution", type=int, default=224, help="the home's input size")
    parser.add_argument("--work", type=Path, default=Path("/tmp/forkpoint-predict-memory"))
    parser.add_argument("--cap-gib", type=float, default=0, help="kill predict past this much address space (0: no cap)")
    a = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    images = a.work / f"images-{a.side}"
    make_images(images, a.images, a.side)
    home = make_home(a.work, a.resolution, env)
    start = time.perf_counter()
    cap = str(int(a.cap_gib * 2**30))
    proc = subprocess.run([sys.executable, "-c", MEASURE, cap, *FORKPOINT, "--home", str(home), "predict", str(images), "--json"],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kib = int(proc.stdout.split()[-1])
    if proc.returncode != 0:
        sys.exit(f"predict failed ({proc.returncode}) at peak RSS {peak_kib / 1024:.0f} MiB after {seconds:.1f} s: "
                 f"{proc.stderr.strip()[-300:]}")
    print(f"forkpoint predict: {a.images} images of {a.side}x{a.side} px at {a.resolution} px: "
          f"peak RSS {peak_kib / 1024:.0f} MiB, {seconds:.1f} s")


if __name__ == "__main__":
    main()
