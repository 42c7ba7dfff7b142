#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine that has Rust, Python 3, Node.js and npm:
# Debian packages (kcat, Chromium, PostgreSQL, fuse3, and python3-venv / g++ / make if missing),
# a Python venv in .venv with tests/clients/requirements.txt and each examples/*/requirements.txt,
# and `npm ci` in tests/clients/node and each examples/*/ with a package.json.
# Idempotent: a step whose inputs have not changed since it last succeeded is skipped, so a second
# run takes about a second. scripts/test.sh runs it first. Needs root or sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Debian packages: kcat for the CLI-client tests, Chromium for the console's browser tests,
# PostgreSQL for the price-tracker example, fuse3 for the power-loss test's FUSE file system,
# python3-venv for `python3 -m venv` with Debian's Python, g++ and make for librdkafka and libFuzzer.
missing=()
command -v kcat >/dev/null || missing+=(kcat)
command -v chromium >/dev/null || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Python venv. One pip run over all the requirement files, so that their pins are resolved
# together; skipped while the files and the interpreter are the ones last installed.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c '' 2>/dev/null; then
  echo "setup: python3 -m venv .venv"
  rm -rf .venv
  python3 -m venv .venv
fi
reqs=(tests/clients/requirements.txt examples/*/requirements.txt)
stamp="$(.venv/bin/python --version 2>&1; sha256sum "${reqs[@]}")"
if [ "$(cat .venv/.requirements-installed 2>/dev/null)" != "$stamp" ]; then
  echo "setup: pip install -r ${reqs[*]}"
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  .venv/bin/python -m pip install -q --disable-pip-version-check "${args[@]}"
  printf '%s\n' "$stamp" > .venv/.requirements-installed
fi

# npm ci (which empties node_modules first), skipped while package-lock.json and Node's version
# are the ones last installed.
for pkg in tests/clients/node/package.json examples/*/package.json; do
  [ -f "$pkg" ] || continue
  dir="$(dirname "$pkg")"
  stamp="$(node --version; cd "$dir" && sha256sum package.json package-lock.json 2>&1 || true)"
  if [ "$(cat "$dir/node_modules/.lock-installed" 2>/dev/null)" != "$stamp" ]; then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
    printf '%s\n' "$stamp" > "$dir/node_modules/.lock-installed"
  fi
done
