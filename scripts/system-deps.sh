#!/usr/bin/env bash
# Install the Debian packages Preuve's demo and tests need, when missing.
# As root: apt-get. Otherwise: name the missing packages and stop.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
for pkg in "$@"; do
  case "$pkg" in
    python3-venv)    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("$pkg") ;;
    restic)          have restic || missing+=("$pkg") ;;
    openssh-server)  [ -x /usr/sbin/sshd ] || missing+=("$pkg") ;;
    openssh-client)  have ssh && have ssh-keygen || missing+=("$pkg") ;;
    rclone)          have rclone || missing+=("$pkg") ;;
    poppler-utils)   have pdftoppm && have pdfsig || missing+=("$pkg") ;;
    chromium)        [ -x /usr/bin/chromium ] || missing+=("$pkg") ;;
    postgresql)      ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=("$pkg") ;;
    *)               dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && have apt-get; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the services it installs; Preuve's tests start their own on loopback, so stop these
  for svc in ssh postgresql; do
    if [[ " ${missing[*]} " == *" openssh-server "* && $svc == ssh ]] || [[ " ${missing[*]} " == *" postgresql "* && $svc == postgresql ]]; then
      (command -v systemctl >/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1) || true
    fi
  done
else
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them as root:  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
