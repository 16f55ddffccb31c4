#!/usr/bin/env bash
# System libraries the napari GUI and its tests need on Linux: Xvfb (a virtual display for
# headless machines such as CI), Qt6's xcb platform plugin libraries and software OpenGL.
# Installs the missing ones with apt-get when running as root; otherwise prints the command.
# After the Python packages are in .venv, `bash scripts/setup_gui.sh --check` lists any
# library Qt's xcb plugin still cannot find (ldd).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    xvfb xauth libgl1 libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3 libglib2.0-0
    libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-randr0
    libxcb-render-util0 libxcb-shape0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
)

if [ "${1:-}" = "--check" ]; then
    plugin=$(ls .venv/lib/python3*/site-packages/PyQt6/Qt6/plugins/platforms/libqxcb.so 2>/dev/null | head -1 || true)
    if [ -z "$plugin" ]; then
        exit 0  # no PyQt6 in .venv: nothing to check
    fi
    missing=$(ldd "$plugin" | awk '/not found/ {print $1}' | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "setup_gui: Qt's xcb plugin cannot find: $missing; install the packages that" \
            "provide them (apt-file search NAME) or napari will not start" >&2
        exit 1
    fi
    exit 0
fi

if [ "$(uname -s)" != "Linux" ] || ! command -v dpkg >/dev/null 2>&1; then
    exit 0  # macOS and non-Debian systems: the platform's Qt wheels bring what they need
fi
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"ok installed"*) ;;
        *) # virtual names (libglib2.0-0 on Ubuntu 24.04) are satisfied by their provider
           if ! dpkg-query -W -f='${Provides}\n' 2>/dev/null | grep -qw "$p"; then missing+=("$p"); fi ;;
    esac
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup_gui: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup_gui: the napari GUI tests need: sudo apt-get install ${missing[*]}" >&2
fi
