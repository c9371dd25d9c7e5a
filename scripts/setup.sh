#!/usr/bin/env bash
# Idempotent setup: system packages (when root), a venv in .venv, forkpoint and its pins.
# Re-running is cheap: pip runs again only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

apt_packages=(dataset-fashion-mnist postgresql chromium chromium-driver)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      if [ "${CI:-}" = true ]; then echo "setup: apt-get install failed" >&2; exit 1; fi
      echo "setup: warning: apt-get install ${missing[*]} failed; Fashion-MNIST, PostgreSQL and browser tests will be unavailable" >&2
    fi
  fi
else
  echo "setup: not root; skipping apt packages (${apt_packages[*]}). The demo needs none of them."
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp_now=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp_now" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # animal-mnist's tensorflow dependency is only for helpers we never call.
  .venv/bin/python -m pip install -q --no-deps 'animal-mnist==0.4'
  echo "$stamp_now" > .venv/.setup-stamp
fi
echo "setup: ready (.venv)"
