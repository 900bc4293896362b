#!/usr/bin/env bash
# Install the RAR extractors sstl.data.archive uses: unar/lsar (RAR 4, solid included) and
# bsdtar from libarchive-tools (RAR 5). Idempotent: does nothing when both are present.
set -euo pipefail

missing=()
command -v unar >/dev/null 2>&1 && command -v lsar >/dev/null 2>&1 || missing+=(unar)
command -v bsdtar >/dev/null 2>&1 || missing+=(libarchive-tools)
if [ ${#missing[@]} -eq 0 ]; then
  echo "unar and bsdtar already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=120 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}"
command -v unar && command -v lsar && command -v bsdtar
