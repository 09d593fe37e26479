#!/usr/bin/env bash
# Install geomprior and what it needs on a fresh Debian/Ubuntu machine. Safe to run again.
#   bash scripts/install.sh            (as root, or as a user with sudo)
# Environment: PYTHON (default: python, else python3), TORCH_INDEX_URL (optional index for torch).
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System libraries: open3d needs libusb/libGL/libgomp; headless rendering needs Xvfb.
packages=(libusb-1.0-0 libgl1 libgomp1 xvfb)
if command -v dpkg >/dev/null 2>&1; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -eq 0 ]; then
            sudo=()
        elif command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "install.sh: need root or sudo to install: ${missing[*]}" >&2
            exit 1
        fi
        echo "install.sh: installing ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "install.sh: system packages present (${packages[*]})"
    fi
else
    echo "install.sh: no dpkg (not Debian?); make sure these are installed: ${packages[*]}" >&2
fi

# 2. Python packages.
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if command -v python >/dev/null 2>&1; then py=python; else py=python3; fi
fi
# torch: kept as it is when importable (GPU users: install your CUDA build of torch first); otherwise
# torch 2.13.0 from the package index, or from TORCH_INDEX_URL when set (e.g. an index of CPU-only wheels).
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    "$py" -m pip install torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
# the test extra, the distributed extra (Ray) and the lidar extra (laspy) so that their tests run too
"$py" -m pip install -e ".[test,distributed,lidar,generative]"
