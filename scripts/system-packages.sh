#!/usr/bin/env bash
# The Debian packages `make test` and `make demo` need, checked before anything else runs.
#   openssh-client  the SFTP tests drive the real OpenSSH client against the simulated post office
#   chromium        the finance page's browser test (Playwright drives Debian's chromium; no download)
#   spin, gcc       the exchange protocol's model check (tests/test_protocol_model.py: spin -a, gcc, ./pan)
# Missing ones are installed with apt-get when this shell may do so (root, or passwordless sudo) and
# EPAY_NO_APT is not set; otherwise this stops at once with the exact command to run.
set -euo pipefail
want="${*:-openssh-client chromium}"
missing=()
for package in $want; do
    case "$package" in
        openssh-client) command -v sftp >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client) ;;
        chromium) [[ -x /usr/bin/chromium ]] || missing+=(chromium) ;;
        spin) command -v spin >/dev/null || missing+=(spin) ;;
        gcc) command -v gcc >/dev/null || missing+=(gcc) ;;
        *) dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package") ;;
    esac
done
((${#missing[@]})) || exit 0
install="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing[*]}"
if [[ -z "${EPAY_NO_APT:-}" ]] && command -v apt-get >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        bash -c "$install" >/dev/null && exit 0
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        echo "installing Debian packages with sudo: ${missing[*]}" >&2
        sudo bash -c "$install" >/dev/null && exit 0
    fi
fi
echo "missing Debian packages: ${missing[*]}" >&2
echo "install them first, as root:  $install" >&2
exit 2
