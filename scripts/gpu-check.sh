#!/usr/bin/env bash
# One prepared run of forkpoint's CUDA path (issue 17), for a machine with an NVIDIA GPU.
#
#   scripts/gpu-check.sh [--out DIR] [--budget-s 570] [--dry-run]
#
# Steps (each logged to DIR/<step>.log, statuses in DIR/summary.json):
#   env     python, torch, CUDA, the GPU (nvidia-smi) and what `--device auto` resolves to
#   tests   pytest -m gpu: add-task on CUDA equals its own rerun, the shared pass equals
#           per-task passes, CUDA-trained weights serve on the CPU, no-forgetting on CUDA
#   demo    forkpoint demo --device cuda (three real tasks, every exact check)
#   bench   forkpoint bench --device cuda (224 px, bf16 training, fp32 scoring) -> DIR/bench/
# The whole run stays within --budget-s (default 570 s, under a 10-minute call): each step
# gets what is left, the bench last, and a step that runs out is marked "timeout".
#
# --dry-run runs everything but the CUDA parts on the CPU so the script cannot rot
# (the test suite runs it): the env report, the gpu tests' collection (they skip), and
# `bench --smoke --device cpu --only throughput` in place of the demo and the GPU bench.
#
# Python: the repo's .venv when present (`make setup`), else the machine's python3 with
# forkpoint installed from this checkout (`pip install --no-deps -e .`; a GPU machine
# without network brings the other wheels in $FORKPOINT_WHEELS, installed with --no-index).
set -uo pipefail
cd "$(dirname "$0")/.."

out=gpu-check-results
budget=570
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --budget-s) budget=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n 2,22p "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $1: use --out DIR, --budget-s N or --dry-run" >&2; exit 2 ;;
  esac
done
case "$budget" in ''|*[!0-9]*) echo "gpu-check: --budget-s takes whole seconds, got '$budget'" >&2; exit 2 ;; esac
mkdir -p "$out" || { echo "gpu-check: cannot create $out: pass a writable --out DIR" >&2; exit 2; }
out=$(cd "$out" && pwd)
start=$(date +%s)

if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=${PYTHON:-python3}
  if ! "$PY" -c "import forkpoint" 2>/dev/null; then
    if [ -n "${FORKPOINT_WHEELS:-}" ]; then
      "$PY" -m pip install -q --no-index --find-links "$FORKPOINT_WHEELS" -e . || exit 1
    else
      "$PY" -m pip install -q -e . || { echo "gpu-check: cannot install forkpoint: run make setup, or set FORKPOINT_WHEELS to a folder of wheels" >&2; exit 1; }
    fi
  fi
fi
FP=("$PY" -m forkpoint.cli)
export PYTHONUNBUFFERED=1 FORKPOINT_DATA="${FORKPOINT_DATA:-$out/data}"

left() { echo $(( budget - ($(date +%s) - start) )); }
declare -A status seconds
order=()
step() {  # step NAME SECONDS_CAP COMMAND...: run with what is left of the budget (at most the cap)
  local name=$1 cap=$2; shift 2
  local t; t=$(left)
  [ "$cap" -gt 0 ] && [ "$t" -gt "$cap" ] && t=$cap
  order+=("$name")
  if [ "$t" -le 5 ]; then status[$name]=skipped; seconds[$name]=0; echo "gpu-check: $name skipped (budget spent)"; return; fi
  echo "gpu-check: $name (up to ${t}s) ..."
  local t0; t0=$(date +%s)
  timeout --kill-after=10 "$t" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  seconds[$name]=$(( $(date +%s) - t0 ))
  case $rc in 0) status[$name]=passed ;; 124|137) status[$name]=timeout ;; *) status[$name]="failed (exit $rc)" ;; esac
  echo "gpu-check: $name ${status[$name]} in ${seconds[$name]}s (log: $out/$name.log)"
}

step env 60 "$PY" - <<'EOF'
import json, platform, shutil, subprocess, torch
from forkpoint.learner.device import describe, resolve_device
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "auto_resolves_to": describe(resolve_device("auto"))}
if shutil.which("nvidia-smi"):
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                        capture_output=True, text=True).stdout.strip()
print(json.dumps(info, indent=2))
EOF
cp "$out/env.log" "$out/env.json" 2>/dev/null

if [ "$dry" = 1 ]; then
  step tests 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu
  step bench 300 "${FP[@]}" bench --smoke --device cpu --only throughput --out "$out/bench"
else
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no usable CUDA GPU here (see $out/env.log): run with --dry-run on a CPU machine" >&2
    exit 2
  fi
  step tests 200 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rA
  step demo 150 "${FP[@]}" demo --device cuda --home "$out/demo-home" --data-root "$FORKPOINT_DATA"
  step bench 0 "${FP[@]}" bench --device cuda --out "$out/bench"
fi

"$PY" - "$out" "$dry" "$(( $(date +%s) - start ))" "${order[@]}" <<EOF
import json, sys
out, dry, wall, names = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4:]
status = {$(for n in "${order[@]}"; do printf '"%s": "%s", ' "$n" "${status[$n]}"; done)}
seconds = {$(for n in "${order[@]}"; do printf '"%s": %s, ' "$n" "${seconds[$n]}"; done)}
summary = {"dry_run": dry, "wall_s": wall, "steps": [{"step": n, "status": status[n], "seconds": seconds[n]} for n in names]}
open(f"{out}/summary.json", "w").write(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
for n in "${order[@]}"; do
  [ "${status[$n]}" = passed ] || { echo "gpu-check: $n did not pass: ${status[$n]}" >&2; exit 1; }
done
echo "gpu-check: all steps passed; results in $out"
