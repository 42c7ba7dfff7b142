#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine that has Rust, Python 3, Node.js and npm:
# Debian packages (kcat, Chromium, PostgreSQL, fuse3, and python3-venv / g++ / make / a JDK / Maven /
# unzip if missing), a Go new enough for tests/go (scripts/go-env.sh: else go1.27.3 from the Go
# module proxy), a Python venv in .venv with tests/clients/requirements.txt and each
# examples/*/requirements.txt, `npm ci` in tests/clients/node and each examples/*/ with a
# package.json, the Java harness's Maven dependencies (tests/jvm: Apache Kafka's client, tools,
# Streams and Connect; their class path in tests/jvm/target/tools.classpath) and the Go module's
# (tests/go: franz-go).
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
command -v javac >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v unzip >/dev/null || missing+=(unzip)
command -v curl >/dev/null || missing+=(curl)
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

# The Java harness (tests/jvm): Maven resolves Apache Kafka's jars and the test plugins, compiles
# the tests and writes the tools' class path; skipped while pom.xml and Java are the ones last done.
stamp="$(javac -version 2>&1; sha256sum tests/jvm/pom.xml)"
if [ "$(cat tests/jvm/target/.deps-installed 2>/dev/null)" != "$stamp" ]; then
  echo "setup: mvn dependencies in tests/jvm"
  (cd tests/jvm && mvn -B -q dependency:build-classpath -Dmdep.outputFile=target/tools.classpath \
    -Dmdep.includeScope=runtime && mvn -B -q test-compile dependency:resolve-plugins >/dev/null)
  printf '%s\n' "$stamp" > tests/jvm/target/.deps-installed
fi

# Go for tests/go (scripts/go-env.sh): the machine's if new enough, else go1.27.3 from the module
# proxy (Debian's golang-go is too old for franz-go).
# shellcheck source=scripts/go-env.sh
. scripts/go-env.sh
VLTAVA_GO_FETCH=1 vltava_go_env
echo "setup: $VLTAVA_GO_NOTE"
[ "$VLTAVA_GO_OK" = 1 ] || exit 1

# The Go module (tests/go, franz-go): `go mod download`, skipped while go.sum is the one last done.
if [ -f tests/go/go.mod ]; then
  stamp="$(go version; sha256sum tests/go/go.mod tests/go/go.sum 2>&1 || true)"
  if [ "$(cat "$(go env GOMODCACHE)/.vltava-tests-installed" 2>/dev/null)" != "$stamp" ]; then
    echo "setup: go mod download in tests/go"
    (cd tests/go && go mod download)
    mkdir -p "$(go env GOMODCACHE)"
    printf '%s\n' "$stamp" > "$(go env GOMODCACHE)/.vltava-tests-installed"
  fi
fi
