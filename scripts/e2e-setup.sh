#!/usr/bin/env bash
# Installs the real VS Code host the end-to-end tests (test/e2e) run in: code-server
# (VS Code in the browser, with a Node extension host) into .e2e/, offline from GitHub
# and Microsoft CDNs -- only the npm registry and Debian's apt repositories are used.
# Adapted from the shared recipe (tools/vscode-e2e-setup.sh); playwright-core comes from
# the project's own devDependencies, so only code-server goes into .e2e/.
#
# Usage:  scripts/e2e-setup.sh [INSTALL_DIR]     (default: <repo>/.e2e)
# Env:    CODE_SERVER_VERSION  default 4.100.3: the last release that runs on Node 20; it
#                              embeds VS Code 1.100.3, hence engines.vscode "^1.100.0".
#         SKIP_APT=1           skip apt-get (packages already present)
# Idempotent: a second run checks the stamp, smoke-tests the host and returns.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$ROOT/.e2e}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
# libkrb5-dev: code-server's 'kerberos' native module; ripgrep: replaces @vscode/ripgrep's
# GitHub download; chromium: the browser playwright-core drives.
APT_PACKAGES=(build-essential python3 pkg-config libkrb5-dev ripgrep chromium)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'e2e-setup: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node is not on PATH"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$CODE_SERVER_VERSION" = 4.100.3 ] && [ "$NODE_MAJOR" != 20 ]; then
  die "code-server 4.100.3 needs Node 20 (found $(node -v))"
fi

if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    log "apt-get install ${missing[*]}"
    # Another apt (CI's own line, a parallel job) may hold the lock: wait instead of failing.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}"
  fi
fi
command -v rg >/dev/null       || die "ripgrep (rg) is missing; install the Debian package 'ripgrep'"
command -v chromium >/dev/null || die "chromium is missing; install the Debian package 'chromium'"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CS="$DIR/node_modules/code-server"
VSC="$CS/lib/vscode"
STAMP="$DIR/.installed"
WANT_STAMP="code-server@$CODE_SERVER_VERSION node$NODE_MAJOR"

# code-server writes config and logs under the XDG folders even for --version: keep $HOME clean.
smoke_test() {
  local scratch rc=0
  scratch="$(mktemp -d)"
  XDG_CONFIG_HOME="$scratch" XDG_DATA_HOME="$scratch" XDG_CACHE_HOME="$scratch" \
    node "$CS/out/node/entry.js" --version >/dev/null 2>&1 || rc=$?
  rm -rf "$scratch"
  return "$rc"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] && smoke_test; then
  log "VS Code host already installed in $DIR ($WANT_STAMP)"
  exit 0
fi

rm -f "$STAMP"
START=$(date +%s)
LOG="$DIR/install.log"; : > "$LOG"
run() { echo "+ $*" >>"$LOG"; "$@" >>"$LOG" 2>&1 || die "failed: $* (see $LOG)"; }
NPM_QUIET=(--no-audit --no-fund --foreground-scripts)
[ -f "$DIR/package.json" ] || echo '{ "name": "patchlens-e2e-host", "private": true }' > "$DIR/package.json"

log "npm install code-server@$CODE_SERVER_VERSION (scripts disabled: its postinstall downloads from GitHub)"
(cd "$DIR" && run npm install "${NPM_QUIET[@]}" --ignore-scripts "code-server@$CODE_SERVER_VERSION")

log "building argon2 from source (its prebuilt binary lives on GitHub)"
(cd "$DIR" && npm_config_build_from_source=true run npm rebuild "${NPM_QUIET[@]}" argon2)

# What follows is code-server's postinstall.sh (vscode_install), minus the downloads.
log "installing the VS Code server's dependencies"
(cd "$VSC" && run npm install "${NPM_QUIET[@]}" --omit=dev --ignore-scripts)
mkdir -p "$VSC/node_modules/@vscode/ripgrep/bin"
ln -sfn "$(command -v rg)" "$VSC/node_modules/@vscode/ripgrep/bin/rg"

log "building native modules (node-pty, spdlog, kerberos, ...): the slow part"
# build_from_source=kerberos skips kerberos's GitHub prebuild; npm_config_yes lets
# node-pty's postinstall fetch node-gyp with npx without asking.
(cd "$VSC" && npm_config_build_from_source=kerberos npm_config_yes=true run npm rebuild "${NPM_QUIET[@]}")

ln -sfn node_modules "$VSC/node_modules.asar"
ln -sfn code-linux.sh "$VSC/bin/remote-cli/code-server"
ln -sfn browser-linux.sh "$VSC/bin/helpers/browser.sh"

log "installing the built-in extensions' shared dependency"
(cd "$VSC/extensions" && run npm install "${NPM_QUIET[@]}" --omit=dev)

smoke_test || die "code-server does not start (see $LOG)"
echo "$WANT_STAMP" > "$STAMP"
log "VS Code host installed in $DIR in $(( $(date +%s) - START ))s ($(du -sh "$DIR" | cut -f1))"
