# Sourced by scripts/setup.sh and scripts/test.sh: puts a Go on the PATH that can build tests/go
# (franz-go needs the `go` version of tests/go/go.mod). In order:
#   1. the machine's Go (the PATH's, then /usr/local/go/bin's), when it is new enough;
#   2. a Go from 1.21 on that is too old: GOTOOLCHAIN=go1.27.3, so that `go` fetches that toolchain
#      from the Go module proxy itself (module golang.org/toolchain);
#   3. no Go, or one older than 1.21 (Debian 12's golang-go is 1.19, which knows no GOTOOLCHAIN):
#      go1.27.3 from the Go module proxy, unpacked once into ~/.cache/vltava/ (setup.sh downloads
#      it, with VLTAVA_GO_FETCH=1; test.sh only uses what is there).
# Sets VLTAVA_GO_NOTE to say which, and VLTAVA_GO_OK=1 when a usable `go` is on the PATH.
vltava_go_toolchain=go1.27.3
vltava_go_dir="${XDG_CACHE_HOME:-$HOME/.cache}/vltava/$vltava_go_toolchain"

# "1.26.8" -> 1026008, for comparison.
vltava_go_num() {
  local IFS=. a b c
  read -r a b c <<<"$1"
  echo $(( ${a:-0} * 1000000 + ${b:-0} * 1000 + ${c:-0} ))
}

# The version of the `go` binary $1 itself (GOTOOLCHAIN=local: not of a toolchain it would switch
# to), as "1.26.8"; empty if it does not run.
vltava_go_version() {
  local v
  v="$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null)" || v="$("$1" version 2>/dev/null | awk '{print $3}')"
  v="${v#go}"
  echo "${v%%[!0-9.]*}"
}

vltava_go_env() {
  VLTAVA_GO_OK=0
  VLTAVA_GO_NOTE=""
  local need go have oldest=""
  need="$(sed -n 's/^go \([0-9.]*\).*/\1/p' tests/go/go.mod 2>/dev/null | head -n 1)"
  need="${need:-1.21.0}"
  # The PATH's go, then /usr/local/go's (Go's own install, not always on the PATH).
  for go in "$(command -v go || true)" /usr/local/go/bin/go; do
    [ -n "$go" ] && [ -x "$go" ] || continue
    have="$(vltava_go_version "$go")"
    [ -n "$have" ] || continue
    if [ "$(vltava_go_num "$have")" -ge "$(vltava_go_num "$need")" ]; then
      export PATH="$(dirname "$go"):$PATH"
      VLTAVA_GO_OK=1
      VLTAVA_GO_NOTE="go $have ($go)"
      return 0
    fi
    if [ -z "$oldest" ] && [ "$(vltava_go_num "$have")" -ge "$(vltava_go_num 1.21)" ]; then
      oldest="$go"
    fi
  done
  if [ -n "$oldest" ]; then
    export PATH="$(dirname "$oldest"):$PATH"
    export GOTOOLCHAIN="$vltava_go_toolchain"
    VLTAVA_GO_OK=1
    VLTAVA_GO_NOTE="$oldest is older than go $need: GOTOOLCHAIN=$vltava_go_toolchain (from the module proxy)"
    return 0
  fi
  if [ ! -x "$vltava_go_dir/bin/go" ] && [ "${VLTAVA_GO_FETCH:-0}" = 1 ]; then
    vltava_go_fetch || return 0
  fi
  if [ -x "$vltava_go_dir/bin/go" ]; then
    export PATH="$vltava_go_dir/bin:$PATH"
    export GOTOOLCHAIN=local
    VLTAVA_GO_OK=1
    VLTAVA_GO_NOTE="$vltava_go_toolchain from the Go module proxy, in $vltava_go_dir"
  else
    VLTAVA_GO_NOTE="no Go >= $need: run scripts/setup.sh to fetch $vltava_go_toolchain"
  fi
}

# Downloads golang.org/toolchain@v0.0.1-<toolchain>.<os>-<arch> from the module proxy (the zip
# `go` itself fetches for GOTOOLCHAIN) and unpacks it into $vltava_go_dir.
vltava_go_fetch() {
  local arch proxy url tmp
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "setup: no Go toolchain for $(uname -m)" >&2; return 1 ;;
  esac
  proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%,*}"
  [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
  url="$proxy/golang.org/toolchain/@v/v0.0.1-$vltava_go_toolchain.linux-$arch.zip"
  echo "setup: fetching $vltava_go_toolchain from $url"
  tmp="$(mktemp -d)"
  if ! curl -fsSL --retry 3 -o "$tmp/go.zip" "$url" \
      || ! unzip -q "$tmp/go.zip" -d "$tmp/x"; then
    echo "setup: could not fetch $url" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$(dirname "$vltava_go_dir")"
  rm -rf "$vltava_go_dir.partial" "$vltava_go_dir"
  mv "$tmp/x/golang.org/toolchain@v0.0.1-$vltava_go_toolchain.linux-$arch" "$vltava_go_dir.partial"
  mv "$vltava_go_dir.partial" "$vltava_go_dir"
  rm -rf "$tmp"
}
