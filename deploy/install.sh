#!/usr/bin/env bash
# Set up (or update) matconcept in a virtual environment: the one install step for users and CI.
#
#   bash deploy/install.sh            # creates .venv (or $MATCONCEPT_VENV) and installs everything
#   bash deploy/install.sh --test     # the same, plus Chromium for the browser tests of the web pages
#
# Needs Python 3 and, for the results page's 3D viewer, npm (Node) to fetch 3Dmol.js from the npm registry.
#
# torch: on a machine without an NVIDIA GPU we install the CPU build torch==2.13.0 (a local wheel on
# this project's build machines; elsewhere PyPI's build). With `nvidia-smi` present we let pip pick
# PyPI's default CUDA build. Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0" or a wheel path.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's Chromium for the web page's browser test (Playwright drives it; it downloads no browser).
if [ "${1:-}" = "--test" ] && [ ! -x "${MATCONCEPT_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: no Chromium at ${MATCONCEPT_CHROMIUM:-/usr/bin/chromium}; install Debian's 'chromium' package" \
      "(or set MATCONCEPT_CHROMIUM) for the web pages' browser tests" >&2
  fi
fi
# 3Dmol.js, the results page's 3D structure viewer: the npm registry's package (BSD-3-Clause), its
# minified browser build copied into service/web/vendor/ (git-ignored, served by the gateway; never a
# CDN). Pinned by version and by the sha256 of the file served; skipped when that file is already there.
THREEDMOL_VERSION="2.5.5"
THREEDMOL_SHA256="f7cc78921ae72e7623e89cdd111434f58c2efddd2ffda1cd212644b406fb8016"
vendor="service/web/vendor"
if [ "$(sha256sum "$vendor/3Dmol-min.js" 2>/dev/null | cut -d' ' -f1)" != "$THREEDMOL_SHA256" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "vendoring 3Dmol.js $THREEDMOL_VERSION (npm) into $vendor ..." >&2
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "3dmol@$THREEDMOL_VERSION" >/dev/null)
    tar -xzf "$tmp/3dmol-$THREEDMOL_VERSION.tgz" -C "$tmp" \
      package/LICENSE package/build/3Dmol-min.js package/build/3Dmol-min.js.LICENSE.txt
    got="$(sha256sum "$tmp/package/build/3Dmol-min.js" | cut -d' ' -f1)"
    if [ "$got" != "$THREEDMOL_SHA256" ]; then
      echo "error: 3dmol@$THREEDMOL_VERSION's build/3Dmol-min.js has sha256 $got, expected $THREEDMOL_SHA256" >&2
      rm -rf "$tmp"
      exit 1
    fi
    mkdir -p "$vendor"
    cp "$tmp/package/build/3Dmol-min.js" "$tmp/package/build/3Dmol-min.js.LICENSE.txt" "$vendor/"
    cp "$tmp/package/LICENSE" "$vendor/3Dmol.LICENSE"
    rm -rf "$tmp"
  else
    echo "warning: no npm: the results page's 3D viewer (3Dmol.js) is not installed; the page says so" >&2
  fi
fi
VENV="${MATCONCEPT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ -z "${TORCH_SPEC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    TORCH_SPEC="torch"
  else
    TORCH_SPEC="torch==2.13.0"
  fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# A stamp of the inputs makes a repeated run a no-op (seconds) instead of a pip resolve.
stamp="$VENV/.matconcept-install"
want="$(cat pyproject.toml deploy/install.sh | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" -e ".[test]"
echo "$want" > "$stamp"
echo "matconcept installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))" >&2
