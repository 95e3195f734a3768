#!/usr/bin/env bash
# Load benchmark: requests per second of a cache hit compared, in the same
# run, with Caddy's own `respond` serving the same body and with
# `reverse_proxy` without a cache. See bench/README.md.
#
# Everything listens on 127.0.0.1 only, on free ports, and stops when the
# script exits. Settings come from the environment:
#
#	SIZES="1KB 16KB 1MB"  bodies to measure (any of 1KB 16KB 64KB 256KB 1MB)
#	DURATION=5s           length of one wrk run
#	CONNS=32 THREADS=1    wrk connections and threads
#	ROUNDS=3              rounds; each round measures every size and target once,
#	                      the table shows the median round
#	CADDY_CPU=0           CPU the Caddy under test is pinned to (taskset)
#	LOAD_CPU=1            CPU of wrk and of the origin Caddy
#	CADDY_BIN=            use this caddy binary instead of building ./cmd/caddy
#	REPO=                 the module to build (default: this script's parent)
#	OUT=bench/results.md  where the table goes ("" to only print it)
#	REV=                  what the results say was measured (default: the commit,
#	                      marked when the tree has uncommitted changes)
#	EXTRA_TARGETS=        more cache configurations, one per line, as in TARGETS
#	REDIS_CPU=CADDY_CPU   CPU of the redis-server the script starts for targets
#	                      that use @REDIS@ (with the Caddy under test by default:
#	                      the server side of the benchmark gets one CPU)
#	GOBENCH='Hit|Baseline|Respond|MissStore'
#	                      go test benchmarks of the root package run ROUNDS times
#	                      (interleaved) before the load runs, pinned to CADDY_CPU,
#	                      and reported too; "" to skip them
#	GOBENCH_TIME=1s       -benchtime of each go test benchmark
#	IDLE_WAIT=0           before each wrk run, wait up to this many seconds for
#	                      the machine to be idle (under IDLE_BUSY=25 % of all
#	                      CPUs busy over one second); 0: do not wait
#	PROFILE=              a directory: after the rounds, take a CPU profile of the
#	                      Caddy under test during one more wrk run of every target
#	                      at the first size (PROFILE/<target>-<size>.pprof); read
#	                      them with `go tool pprof -top <caddy binary> <file>`
#	                      (the binary is copied to PROFILE/caddy)
set -euo pipefail

cd "${REPO:-$(dirname "$0")/..}"

SIZES=${SIZES:-"1KB 16KB 1MB"}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
CADDY_CPU=${CADDY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT-bench/results.md}
PROFILE=${PROFILE:-}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_BUSY=${IDLE_BUSY:-25}
REDIS_CPU=${REDIS_CPU:-$CADDY_CPU}
GOBENCH=${GOBENCH-Hit|Baseline|Respond|MissStore}
GOBENCH_TIME=${GOBENCH_TIME:-1s}

# Cache configurations under test, one per line: "name|cache options".
# The options become the lines of the site's `cache { }` block: ';' starts
# a new line, @TMP@ is this run's temporary directory, @REDIS@ the address
# (127.0.0.1:port) of a redis-server that the script starts when a target
# uses it. Each target is a site with `cache` in front of `reverse_proxy` to
# the same origin. The first one is "cache hit" (the memory store): every
# target is also reported as a ratio to it. Adding a storage configuration
# is one line, e.g.
#	"cache-sqlite-full|storage sqlite { ; path @TMP@/full.db ; synchronous full ; }"
TARGETS=(
	"cache-memory|storage memory 512MiB"
	"cache-sqlite-hot|storage sqlite @TMP@/hot.db"
	"cache-sqlite-nohot|storage sqlite @TMP@/nohot.db ; memory off"
	"cache-redis-hot|storage redis redis://@REDIS@/0"
	"cache-redis-nohot|storage redis redis://@REDIS@/1 ; memory off"
)
if [[ -n ${EXTRA_TARGETS:-} ]]; then
	while IFS= read -r line; do
		[[ -n $line ]] && TARGETS+=("$line")
	done <<<"$EXTRA_TARGETS"
fi

die() {
	echo "bench: $*" >&2
	exit 1
}

size_bytes() {
	case $1 in
	1KB) echo 1024 ;;
	16KB) echo 16384 ;;
	64KB) echo 65536 ;;
	256KB) echo 262144 ;;
	1MB) echo 1048576 ;;
	*) die "unknown size $1 (want 1KB 16KB 64KB 256KB 1MB)" ;;
	esac
}

# --- tools -----------------------------------------------------------------

if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "bench: installing wrk" >&2
		apt-get install -y wrk >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } ||
			die "could not install wrk; install it with: apt-get install wrk"
	else
		die "wrk not found; install it (Debian/Ubuntu: sudo apt-get install wrk)"
	fi
fi
NEED_REDIS=
for t in "${TARGETS[@]}"; do
	[[ $t == *@REDIS@* ]] && NEED_REDIS=1
done
if [[ -n $NEED_REDIS ]] && ! { command -v redis-server && command -v redis-cli; } >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "bench: installing redis-server" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null 2>&1; } ||
			die "could not install redis-server; install it with: apt-get install redis-server (or bash scripts/test-deps.sh)"
	else
		die "redis-server/redis-cli not found; install them (bash scripts/test-deps.sh, or Debian/Ubuntu: sudo apt-get install redis-server)"
	fi
fi
PIN_CADDY=() PIN_LOAD=() PIN_REDIS=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	PIN_CADDY=(taskset -c "$CADDY_CPU")
	PIN_LOAD=(taskset -c "$LOAD_CPU")
	PIN_REDIS=(taskset -c "$REDIS_CPU")
else
	echo "bench: not pinning (need taskset and 2 CPUs); figures will be noisier" >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

if [[ -n ${CADDY_BIN:-} ]]; then
	cp "$CADDY_BIN" "$TMP/caddy"
else
	echo "bench: building ./cmd/caddy" >&2
	go build -o "$TMP/caddy" ./cmd/caddy || die "building ./cmd/caddy failed"
fi

# --- ports -----------------------------------------------------------------

USED_PORTS=" "
free_port() {
	local p
	for _ in $(seq 200); do
		# below the kernel's ephemeral range (32768+ by default), so that
		# no outgoing connection holds the port
		p=$((12000 + RANDOM % 20000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		if [[ -z $(ss -Htan "sport = :$p" 2>/dev/null) ]]; then
			USED_PORTS+="$p "
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

P_ORIGIN=$(free_port)
P_RESPOND=$(free_port)
P_PROXY=$(free_port)
P_ADMIN=$(free_port)
P_REDIS=
[[ -z $NEED_REDIS ]] || P_REDIS=$(free_port)
declare -a T_NAME T_PORT
for t in "${TARGETS[@]}"; do
	T_NAME+=("${t%%|*}")
	T_PORT+=("$(free_port)")
done

# --- Caddyfiles ------------------------------------------------------------

# tabs N: N tab characters.
tabs() { local i; for ((i = 0; i < $1; i++)); do printf '\t'; done; }

# body N: N bytes of text, no placeholders, no JSON.
body() { head -c "$1" /dev/zero | tr '\0' 'a'; }

global() { # name admin-address
	cat <<EOF
{
	admin ${2:-off}
	persist_config off
	auto_https off
	storage file_system $TMP/data/$1
	log {
		output file $TMP/$1.log
		level WARN
	}
}

EOF
}

# responders: one `respond` per size, selected by path (/1KB, /16KB, ...).
responders() {
	local s
	for s in $SIZES; do
		printf '\t@s%s path /%s\n\trespond @s%s "%s" 200\n' "$s" "$s" "$s" "$(body "$(size_bytes "$s")")"
	done
}

{
	global origin
	printf ':%s {\n\tbind 127.0.0.1\n\theader Cache-Control "public, max-age=3600"\n' "$P_ORIGIN"
	responders
	printf '}\n'
} >"$TMP/origin.Caddyfile"

{
	if [[ -n $PROFILE ]]; then
		global front "127.0.0.1:$P_ADMIN" # serves /debug/pprof/
	else
		global front
	fi
	printf '# baseline: respond with the same body\n:%s {\n\tbind 127.0.0.1\n' "$P_RESPOND"
	responders
	printf '}\n\n# reverse_proxy without cache\n:%s {\n\tbind 127.0.0.1\n\treverse_proxy 127.0.0.1:%s\n}\n' "$P_PROXY" "$P_ORIGIN"
	for i in "${!TARGETS[@]}"; do
		opts=${TARGETS[$i]#*|}
		opts=${opts//@TMP@/$TMP}
		opts=${opts//@REDIS@/127.0.0.1:$P_REDIS}
		printf '\n# %s\n:%s {\n\tbind 127.0.0.1\n\tcache {\n' "${T_NAME[$i]}" "${T_PORT[$i]}"
		# one option line per ';'-separated part, nested braces indented
		depth=2
		IFS=';' read -ra parts <<<"$opts"
		for part in "${parts[@]}"; do
			part=$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$part")
			[[ -z $part ]] && continue
			[[ $part == "}" ]] && depth=$((depth - 1))
			printf '%s%s\n' "$(tabs "$depth")" "$part"
			[[ $part == *"{" ]] && depth=$((depth + 1))
		done
		printf '\t}\n\treverse_proxy 127.0.0.1:%s\n}\n' "$P_ORIGIN"
	done
} >"$TMP/front.Caddyfile"

# --- go test benchmarks ----------------------------------------------------

# Run before any server starts, each round over the whole set (interleaved),
# pinned to the CPU of the Caddy under test. GB_NS[name] = ns/op per round.
declare -A GB_NS GB_B GB_A
GB_NAMES=()
GB_LOADS=()
if [[ -n $GOBENCH ]]; then
	echo "bench: building the go test benchmarks" >&2
	go test -c -o "$TMP/cache.test" . || die "building the go test benchmarks failed"
	GB_LOADS+=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
	for round in $(seq "$ROUNDS"); do
		out=$(TMPDIR=$TMP "${PIN_CADDY[@]}" "$TMP/cache.test" -test.run '^$' -test.bench "$GOBENCH" \
			-test.benchmem -test.benchtime "$GOBENCH_TIME" 2>&1) || die "go test benchmarks failed:"$'\n'"$out"
		while read -r name ns b a; do
			[[ -v GB_NS[$name] ]] || GB_NAMES+=("$name")
			GB_NS[$name]+="$ns "
			GB_B[$name]=$b GB_A[$name]=$a
		done < <(awk '/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name); ns = b = a = "-"
			for (i = 2; i < NF; i++) {
				if ($(i + 1) == "ns/op") ns = $i
				if ($(i + 1) == "B/op") b = $i
				if ($(i + 1) == "allocs/op") a = $i
			}
			print name, ns, b, a
		}' <<<"$out")
		echo "bench: go test benchmarks, round $round of $ROUNDS done" >&2
		GB_LOADS+=("after round $round: $(cut -d' ' -f1-3 /proc/loadavg)")
	done
	((${#GB_NAMES[@]} > 0)) || die "the go test benchmarks matched nothing: GOBENCH=$GOBENCH"
fi

# --- start -----------------------------------------------------------------

start() { # name cpu-pin...
	local name=$1
	shift
	HOME=$TMP XDG_DATA_HOME=$TMP/xdg XDG_CONFIG_HOME=$TMP/xdg \
		"$@" "$TMP/caddy" run --adapter caddyfile --config "$TMP/$name.Caddyfile" \
		>"$TMP/$name.out" 2>&1 &
	PIDS+=($!)
}

wait_ready() { # port path
	local i
	for i in $(seq 300); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$1$2" 2>/dev/null; then
			return
		fi
		for p in "${PIDS[@]}"; do
			kill -0 "$p" 2>/dev/null || {
				cat "$TMP"/*.out "$TMP"/*.log >&2 2>/dev/null
				die "caddy exited early"
			}
		done
		sleep 0.1
	done
	cat "$TMP"/*.out "$TMP"/*.log >&2 2>/dev/null
	die "127.0.0.1:$1 not ready after 30s"
}

REDIS_PID=
if [[ -n $NEED_REDIS ]]; then
	mkdir -p "$TMP/redis"
	"${PIN_REDIS[@]}" redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
		--dir "$TMP/redis" --logfile "$TMP/redis.log" >"$TMP/redis.out" 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	for i in $(seq 100); do
		[[ $(redis-cli -h 127.0.0.1 -p "$P_REDIS" ping 2>/dev/null) == PONG ]] && break
		kill -0 "$REDIS_PID" 2>/dev/null || { cat "$TMP/redis.out" "$TMP/redis.log" >&2 2>/dev/null; die "redis-server exited early"; }
		((i < 100)) || die "redis-server on 127.0.0.1:$P_REDIS not ready after 10s"
		sleep 0.1
	done
fi
start origin "${PIN_LOAD[@]}"
start front "${PIN_CADDY[@]}"
FRONT_PID=${PIDS[-1]}
first=${SIZES%% *}
wait_ready "$P_ORIGIN" "/$first"
wait_ready "$P_RESPOND" "/$first"
wait_ready "$P_PROXY" "/$first"

# Warm every cache target and check that it hits and serves the whole body.
for i in "${!T_NAME[@]}"; do
	for s in $SIZES; do
		url="http://127.0.0.1:${T_PORT[$i]}/$s"
		curl -fsS -o /dev/null "$url" || die "${T_NAME[$i]} $s: warming request failed"
		hdr=$(curl -fsS -D - -o "$TMP/body" "$url") || die "${T_NAME[$i]} $s: request failed"
		grep -qi '^cache-status:.*; hit' <<<"$hdr" ||
			die "${T_NAME[$i]} $s: second request is not a cache hit:"$'\n'"$hdr"
		got=$(wc -c <"$TMP/body")
		[[ $got == "$(size_bytes "$s")" ]] || die "${T_NAME[$i]} $s: hit has $got body bytes"
	done
done

# --- measure ---------------------------------------------------------------

HZ=$(getconf CLK_TCK)
# cpu_ticks pid...: user+system CPU time of these processes, in clock ticks.
cpu_ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

# measure port size [pid...]: one wrk run. Sets M_RPS (requests per second)
# and M_EFF (requests per CPU-second of the Caddy under test, plus that of
# the other pids, e.g. its redis-server: what it would serve with a whole CPU
# to itself, steadier than M_RPS on a busy machine).
measure() {
	local out t0 t1 n port=$1 size=$2
	shift 2
	t0=$(cpu_ticks "$FRONT_PID" "$@")
	out=$("${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$port/$size" 2>&1) ||
		die "wrk failed: $out"
	t1=$(cpu_ticks "$FRONT_PID" "$@")
	if grep -q 'Non-2xx' <<<"$out"; then
		die "wrk saw error responses on :$port/$size:"$'\n'"$out"
	fi
	if grep -q 'Socket errors' <<<"$out"; then
		echo "bench: socket errors on :$port/$size: $(grep 'Socket errors' <<<"$out")" >&2
	fi
	M_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
	n=$(awk '/ requests in / {print $1}' <<<"$out")
	M_EFF=$(awk -v n="$n" -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { if (t > 0) printf "%.0f", n * hz / t; else print 0 }')
}

# busy_pct: percentage of all CPUs busy during one second.
busy_pct() {
	local a b
	a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; if (t > 0) printf "%d", 100 * (y[1] - x[1]) / t; else printf "0" }'
}

# wait_idle: wait up to IDLE_WAIT seconds for other work on the machine to calm down.
WAITS=0
wait_idle() {
	((IDLE_WAIT > 0)) || return 0
	local end=$((SECONDS + IDLE_WAIT)) b
	while ((SECONDS < end)); do
		b=$(busy_pct)
		((b < IDLE_BUSY)) && return 0
	done
	WAITS=$((WAITS + 1))
	echo "bench: machine still ${b}% busy after ${IDLE_WAIT}s; measuring anyway" >&2
}

COLS=(respond reverse_proxy "${T_NAME[@]}")
PORTS=("$P_RESPOND" "$P_PROXY" "${T_PORT[@]}")
EXTRA=("" "") # pids whose CPU time counts with the Caddy under test's, per column
for t in "${TARGETS[@]}"; do
	if [[ $t == *@REDIS@* ]]; then EXTRA+=("$REDIS_PID"); else EXTRA+=(""); fi
done
declare -A R E # R[size,col] / E[size,col] = one rps / req-per-CPU-s figure per round
LOADS=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
for round in $(seq "$ROUNDS"); do
	for s in $SIZES; do
		for c in "${!COLS[@]}"; do
			wait_idle
			# shellcheck disable=SC2086 # EXTRA holds zero or one pid
			measure "${PORTS[$c]}" "$s" ${EXTRA[$c]}
			R[$s,${COLS[$c]}]+="$M_RPS "
			E[$s,${COLS[$c]}]+="$M_EFF "
			printf 'round %d  %-5s %-16s %8s rps %8s req/CPU-s\n' "$round" "$s" "${COLS[$c]}" "$M_RPS" "$M_EFF" >&2
		done
	done
	LOADS+=("after round $round: $(cut -d' ' -f1-3 /proc/loadavg)")
done

# Check that the cache targets were still hitting (nothing expired or evicted).
for i in "${!T_NAME[@]}"; do
	hdr=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:${T_PORT[$i]}/$first")
	grep -qi '^cache-status:.*; hit' <<<"$hdr" || die "${T_NAME[$i]}: no longer hitting after the runs"
done

# --- profiles --------------------------------------------------------------

if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	cp "$TMP/caddy" "$PROFILE/caddy"
	secs=${DURATION%s}
	for c in "${!COLS[@]}"; do
		f="$PROFILE/${COLS[$c]}-$first.pprof"
		curl -fsS -o "$f" "http://127.0.0.1:$P_ADMIN/debug/pprof/profile?seconds=$secs" &
		cpid=$!
		sleep 0.2
		# shellcheck disable=SC2086
		measure "${PORTS[$c]}" "$first" ${EXTRA[$c]}
		wait "$cpid" || die "taking the profile $f failed"
		echo "bench: $f ($M_RPS rps while profiling)" >&2
	done
fi

# --- report ----------------------------------------------------------------

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# ratio "a1 a2 ..." "b1 b2 ...": the median of the per-round ratios a_i/b_i
# (each pair was measured minutes apart at most, so drifting load cancels).
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " "); m = 0
		for (i = 1; i <= n; i++) if (y[i] > 0) r[++m] = x[i] / y[i]
		if (m == 0) { print "-"; exit }
		for (i = 2; i <= m; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
		printf "%.2f", (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2
	}'
}

if [[ -n ${REV:-} ]]; then
	commit=$REV
else
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	# only changes that reach the binary (other people's test files do not)
	if ! git diff --quiet HEAD -- '*.go' ':!*_test.go' go.mod go.sum 2>/dev/null ||
		[[ -n $(git ls-files --others --exclude-standard -- '*.go' ':!*_test.go' 2>/dev/null) ]]; then
		commit+=" with uncommitted changes"
	fi
fi
[[ -z ${CADDY_BIN:-} ]] || commit+=" (prebuilt binary)"
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

# table A unit: the figures in array A ("R" or "E") of every target, each
# with its ratios to respond, reverse_proxy and the first cache target.
table() {
	local -n fig=$1
	local unit=$2 s c b line
	local base=(respond reverse_proxy "${T_NAME[0]}")
	echo "| body size | target | $unit | ÷ respond | ÷ reverse_proxy | ÷ ${T_NAME[0]} |"
	echo "| --- | --- | ---: | ---: | ---: | ---: |"
	for s in $SIZES; do
		for c in "${COLS[@]}"; do
			line="| $s | $c | $(median "${fig[$s,$c]}") |"
			for b in "${base[@]}"; do
				if [[ $b == "$c" ]]; then line+=" — |"; else line+=" $(ratio "${fig[$s,$c]}" "${fig[$s,$b]}") |"; fi
			done
			echo "$line"
		done
	done
}

# gotable: the go test benchmarks, each with the speed of Respond at the same
# body size relative to it (Respond ns/op ÷ its ns/op: above 1 is faster
# than Respond), the median of the per-round ratios.
gotable() {
	local n size ref
	echo "| benchmark | ns/op | B/op | allocs/op | speed ÷ Respond | ns/op of every round |"
	echo "| --- | ---: | ---: | ---: | ---: | --- |"
	for n in "${GB_NAMES[@]}"; do
		size=1KB
		[[ $n =~ /(1KB|16KB|1MB)$ ]] && size=${BASH_REMATCH[1]}
		ref="-"
		if [[ $n == BenchmarkRespond/* ]]; then
			ref="—"
		elif [[ -v GB_NS[BenchmarkRespond/$size] ]]; then
			ref=$(ratio "${GB_NS[BenchmarkRespond/$size]}" "${GB_NS[$n]}")
		fi
		echo "| ${n#Benchmark} | $(median "${GB_NS[$n]}") | ${GB_B[$n]} | ${GB_A[$n]} | $ref | ${GB_NS[$n]% } |"
	done
}

report() {
	local s c i
	echo "# Benchmark results"
	echo
	echo "Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(go version 2>/dev/null | awk '{print $3}')."
	echo "CPU: $cpu, $(nproc) CPUs. wrk \`-t$THREADS -c$CONNS -d$DURATION\` (keep-alive, HTTP/1.1)."
	if [[ ${#PIN_CADDY[@]} -gt 0 ]]; then
		echo "The Caddy under test is pinned to CPU $CADDY_CPU; wrk and the origin Caddy to CPU $LOAD_CPU."
		[[ -z $NEED_REDIS ]] || echo "redis-server is pinned to CPU $REDIS_CPU."
	else
		echo "Nothing is pinned (taskset or a second CPU missing)."
	fi
	echo "Each round measures every size and target once, interleaved; $ROUNDS rounds. Figures are the"
	echo "median over the rounds; ratios are the median of the per-round ratios."
	echo
	echo "Targets (each one a site of the Caddy under test; the cache targets put \`cache { … }\` in front"
	echo "of \`reverse_proxy\` to the origin; \`;\` separates lines of the \`cache\` block):"
	echo
	echo "- \`respond\`: Caddy's \`respond\` with the same body (the baseline)"
	echo "- \`reverse_proxy\`: \`reverse_proxy\` to the origin, no cache"
	for i in "${!T_NAME[@]}"; do echo "- \`${T_NAME[$i]}\`: \`${TARGETS[$i]#*|}\`"; done
	if [[ -n $NEED_REDIS ]]; then
		echo
		echo "\`@REDIS@\` is a redis-server $(redis-server --version | awk '{print $3}' | sed 's/^v=//') on loopback started by the script (\`--save '' --appendonly no\`)."
	fi
	echo
	echo "Load average (1, 5, 15 min); the machine is shared, read the figures with it:"
	echo
	for l in "${LOADS[@]}"; do echo "- $l"; done
	if ((IDLE_WAIT > 0)); then
		echo "- each run waited up to ${IDLE_WAIT}s for the machine to be under ${IDLE_BUSY}% busy; $WAITS runs started busier"
	fi
	echo
	echo "## Requests per CPU-second of the Caddy under test"
	echo
	echo "Requests served divided by the CPU time (user + system) the Caddy under test used during the run:"
	echo "its throughput with one CPU to itself. Other processes on the machine lower the rps below but"
	echo "hardly this, so on a busy machine its ratios are the ones to trust."
	if [[ -n $NEED_REDIS ]]; then
		echo "For the targets on Redis the CPU time of redis-server during the run is added to Caddy's:"
		echo "the figure is requests per CPU-second of the whole server side."
	fi
	echo
	table E "req/CPU-s"
	echo
	echo "## Requests per second"
	echo
	table R rps
	echo
	echo "## Every round"
	echo
	echo "| body size | target | rps | req/CPU-s |"
	echo "| --- | --- | --- | --- |"
	for s in $SIZES; do
		for c in "${COLS[@]}"; do
			echo "| $s | $c | ${R[$s,$c]% } | ${E[$s,$c]% } |"
		done
	done
	if [[ ${#GB_NAMES[@]} -gt 0 ]]; then
		echo
		echo "## go test benchmarks"
		echo
		echo "\`go test -run '^\$' -bench '$GOBENCH' -benchmem -benchtime $GOBENCH_TIME .\` (see bench/README.md), run $ROUNDS times"
		echo "over the whole set before the load runs, pinned to CPU $CADDY_CPU (so GOMAXPROCS is 1 when pinned)."
		echo "ns/op is the median over the rounds; B/op and allocs/op are from the last round. No network: the"
		echo "handler serves into a writer that counts bytes. SQLite benchmarks use a file in a temporary"
		echo "directory with the module's defaults (WAL, synchronous normal, zstd for bodies of 1 KiB or more:"
		echo "the benchmark bodies are one repeated letter, so they compress very well)."
		echo
		echo "Load average during them:"
		echo
		for l in "${GB_LOADS[@]}"; do echo "- $l"; done
		echo
		gotable
	fi
}

report >"$TMP/results.md"
cat "$TMP/results.md"
if [[ -n $OUT ]]; then
	cp "$TMP/results.md" "$OUT"
	echo "bench: wrote $OUT" >&2
fi
