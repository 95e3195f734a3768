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
#	ROUNDS=5              rounds; each round measures every size and target once,
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
#	                      that use @REDIS@ and for the scale part (with the Caddy
#	                      under test by default: the server side of the
#	                      benchmark gets one CPU)
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
#
# Parts (arguments, or PARTS; default all four): `bash bench/run.sh scale`
# runs only the scale benchmark.
#
#	load   the hit benchmark above (wrk, every size and target, and the go
#	       test benchmarks)
#	fill   FILL_N (20000) distinct FILL_SIZE (16KB) misses from FILL_CONNS (8)
#	       clients, FILL_ROUNDS (3) interleaved rounds, on reverse_proxy, the
#	       memory store and the default SQLite: the time of each
#	rss    RSS growth per stored entry of a fresh Caddy per store (memory
#	       store, hot tier), body size (RSS_SIZES: 4KB 16KB) and entry count
#	       (RSS_COUNTS: 20000 200000), from /proc/<pid>/status before and
#	       after the fill
#	scale  the default SQLite with SCALE_N (1000000) stored 1 KB entries,
#	       filled through the store's API (bench/scale), against SCALE_SMALL
#	       (10000): hit throughput for SCALE_DURATION (10s) per run,
#	       SCALE_ROUNDS (3) rounds, start and first hit, a listing, a tag purge
#	       of SCALE_N/100 entries, hit latency (SWEEP_CONNS clients, 4, for
#	       SWEEP_LOAD, 10s) with and without a sweep of SCALE_EXPIRED (100000)
#	       expired entries (SCALE_SWEEP, 1h: the sweep_interval of the files,
#	       long so that only the sweep the script starts runs); then the same
#	       hit test on Redis (databases 2 and 3 of the script's redis-server,
#	       `memory off`, filled by bench/scale in pipelines), unless
#	       SCALE_REDIS=0
#
# JSON=bench/results.json gets the headline figures (for bench/charts, which
# draws bench/*.svg from it; CHARTS=0 skips the charts).
set -euo pipefail

cd "${REPO:-$(dirname "$0")/..}"

SIZES=${SIZES:-"1KB 16KB 1MB"}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
CADDY_CPU=${CADDY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT-bench/results.md}
PROFILE=${PROFILE:-}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_BUSY=${IDLE_BUSY:-25}
REDIS_CPU=${REDIS_CPU:-$CADDY_CPU}
GOBENCH=${GOBENCH-Hit|Baseline|Respond|MissStore}
GOBENCH_TIME=${GOBENCH_TIME:-1s}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $# -gt 0 ]]; then PARTS="$*"; fi
PARTS=${PARTS:-load fill rss scale}
for p in $PARTS; do
	case $p in load | fill | rss | scale) ;; *)
		echo "bench: unknown part $p (want load, fill, rss, scale)" >&2
		exit 2
		;;
	esac
done
# has part: whether this run includes the part.
has() { [[ " $PARTS " == *" $1 "* ]]; }
FILL_N=${FILL_N:-20000}
FILL_SIZE=${FILL_SIZE:-16KB}
FILL_CONNS=${FILL_CONNS:-8}
FILL_ROUNDS=${FILL_ROUNDS:-3}
RSS_SIZES=${RSS_SIZES:-"4KB 16KB"}
RSS_COUNTS=${RSS_COUNTS:-"20000 200000"}
SCALE_N=${SCALE_N:-1000000}
SCALE_SMALL=${SCALE_SMALL:-10000}
SCALE_DURATION=${SCALE_DURATION:-10s}
SCALE_ROUNDS=${SCALE_ROUNDS:-3}
SCALE_CONNS=${SCALE_CONNS:-32}
SCALE_EXPIRED=${SCALE_EXPIRED:-100000}
SCALE_SWEEP=${SCALE_SWEEP:-1h}
SWEEP_CONNS=${SWEEP_CONNS:-4}
SWEEP_LOAD=${SWEEP_LOAD:-10s}
SCALE_REDIS=${SCALE_REDIS:-1}
JSON=${JSON-bench/results.json}
CHARTS=${CHARTS:-1}

# Cache configurations under test, one per line: "name|cache options".
# The options become the lines of the site's `cache { }` block: ';' starts
# a new line, @TMP@ is this run's temporary directory, @REDIS@ the address
# (127.0.0.1:port) of a redis-server that the script starts when a target
# uses it (the scale part uses databases 2 and 3 of the same server, and
# empties them first). Each target is a site with `cache` in front of `reverse_proxy` to
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
	4KB) echo 4096 ;;
	*) die "unknown size $1 (want 1KB 4KB 16KB 64KB 256KB 1MB)" ;;
	esac
}

# --- tools -----------------------------------------------------------------

if has load && ! command -v wrk >/dev/null; then
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
	[[ $t == *@REDIS@* ]] && has load && NEED_REDIS=1
done
if has scale && [[ $SCALE_REDIS == 1 ]]; then NEED_REDIS=1; fi
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
if has fill || has rss || has scale; then
	go build -o "$TMP/fill" ./bench/fill || die "building ./bench/fill failed"
fi
if has scale; then
	go build -o "$TMP/scale" ./bench/scale || die "building ./bench/scale failed"
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

# responders [sizes]: one `respond` per size (default: SIZES), selected by
# path (/1KB, /16KB, ...).
responders() {
	local s
	for s in ${1:-$SIZES}; do
		printf '\t@s%s path /%s\n\trespond @s%s "%s" 200\n' "$s" "$s" "$s" "$(body "$(size_bytes "$s")")"
	done
}

{
	global origin
	printf ':%s {\n\tbind 127.0.0.1\n\theader Cache-Control "public, max-age=3600"\n' "$P_ORIGIN"
	# the load sizes and those of the other parts, each once
	responders "$(tr ' ' '\n' <<<"$SIZES 1KB $FILL_SIZE $RSS_SIZES" | grep . | sort -u | tr '\n' ' ')"
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
if has load && [[ -n $GOBENCH ]]; then
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

# redis_version: the version of redis-server, e.g. 7.0.15.
redis_version() { redis-server --version | awk '{print $3}' | sed 's/^v=//'; }

REDIS_PID=
if [[ -n $NEED_REDIS ]]; then
	mkdir -p "$TMP/redis"
	# no snapshots, no log file of writes, no memory limit (so no eviction):
	# the scale part stores a million entries
	"${PIN_REDIS[@]}" redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
		--maxmemory 0 --maxmemory-policy noeviction --dir "$TMP/redis" --logfile "$TMP/redis.log" >"$TMP/redis.out" 2>&1 &
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
wait_ready "$P_ORIGIN" /1KB
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

if has load; then
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
fi

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

# --- helpers of the fill, rss and scale parts -------------------------------

# forget pid: drop a process that has ended from PIDS (wait_ready takes
# any ended pid in PIDS for a Caddy that exited early).
forget() {
	local p keep=()
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# stop_caddy pid: stop one process this script started and forget it.
stop_caddy() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget "$1"
}

# rss_kb pid: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# jget key json: a number from the one-line JSON of bench/fill or bench/scale.
jget() { grep -o "\"$1\": *[0-9.e+-]*" <<<"$2" | head -1 | sed 's/.*: *//'; }

# wait_hit url seconds: poll url (every 10 ms) until it is a cache hit.
wait_hit() {
	local end=$((SECONDS + $2))
	while ((SECONDS < end)); do
		if curl -fsS -D - -o /dev/null "$1" 2>/dev/null | grep -qi '^cache-status:.*; hit'; then
			return 0
		fi
		sleep 0.01
	done
	return 1
}

# site port cache-lines...: a site of the Caddy under test with a cache
# block (one line per argument; no arguments: reverse_proxy alone).
site() {
	local port=$1 l
	shift
	printf ':%s {\n\tbind 127.0.0.1\n' "$port"
	if [[ $# -gt 0 ]]; then
		printf '\tcache {\n'
		for l in "$@"; do printf '\t\t%s\n' "$l"; done
		printf '\t}\n'
	fi
	printf '\treverse_proxy 127.0.0.1:%s\n}\n\n' "$P_ORIGIN"
}

# Other caches as references: only when installed, and not driven by this
# script yet; the report says so.
REF_NOTES=()
for ref in "nginx|nginx proxy_cache" "varnishd|Varnish"; do
	if command -v "${ref%%|*}" >/dev/null; then
		REF_NOTES+=("${ref#*|}: installed, but bench/run.sh does not configure it yet: skipped")
	else
		REF_NOTES+=("${ref#*|}: not installed: skipped")
	fi
done
for n in "${REF_NOTES[@]}"; do echo "bench: $n" >&2; done

# --- fill ------------------------------------------------------------------

# FT[col] = seconds per round of FILL_N distinct misses.
FILL_COLS=(reverse_proxy cache-memory cache-sqlite)
declare -A FT
FILL_LOADS=()
if has fill; then
	fill_ports=("$(free_port)" "$(free_port)" "$(free_port)")
	{
		global fill
		site "${fill_ports[0]}"
		site "${fill_ports[1]}" "storage memory 4GiB"
		site "${fill_ports[2]}" "storage sqlite $TMP/fill.db"
	} >"$TMP/fill.Caddyfile"
	start fill "${PIN_CADDY[@]}"
	fill_pid=${PIDS[-1]}
	for p in "${fill_ports[@]}"; do wait_ready "$p" /1KB; done
	FILL_LOADS+=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
	for round in $(seq "$FILL_ROUNDS"); do
		for c in "${!FILL_COLS[@]}"; do
			url="http://127.0.0.1:${fill_ports[$c]}/$FILL_SIZE?fill=%d"
			out=$("${PIN_LOAD[@]}" "$TMP/fill" -url "$url" -from $((round * FILL_N)) -n "$FILL_N" \
				-c "$FILL_CONNS" -size "$(size_bytes "$FILL_SIZE")") || die "fill of ${FILL_COLS[$c]} failed: $out"
			[[ $c == 0 || $(jget hits "$out") == 0 ]] || die "fill of ${FILL_COLS[$c]}: some requests were hits: $out"
			FT[${FILL_COLS[$c]}]+="$(printf '%.2f' "$(jget seconds "$out")") "
			printf 'fill round %d  %-14s %8.2f s\n' "$round" "${FILL_COLS[$c]}" "$(jget seconds "$out")" >&2
			if ((c > 0)); then # the entries are stored: the first ones hit now
				out=$("$TMP/fill" -url "$url" -from $((round * FILL_N)) -n 100 -c 1 -hit) || {
					tail -n 20 "$TMP/fill.log" >&2 # the warnings of the Caddy under test
					die "after the fill of ${FILL_COLS[$c]}, its first entries do not hit: $out"
				}
			fi
		done
		FILL_LOADS+=("after round $round: $(cut -d' ' -f1-3 /proc/loadavg)")
	done
	stop_caddy "$fill_pid"
fi

# --- rss -------------------------------------------------------------------

# RS[store,size,count] = RSS growth per entry in bytes; RSR[...] = "before after" KiB.
RSS_STORES=(memory hot-tier)
declare -A RS RSR
RSS_LOADS=()
if has rss; then
	RSS_LOADS+=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
	for store in "${RSS_STORES[@]}"; do
		for size in $RSS_SIZES; do
			for n in $RSS_COUNTS; do
				name=rss-$store-$size-$n
				port=$(free_port)
				{
					global "$name"
					if [[ $store == memory ]]; then
						site "$port" "storage memory 16GiB"
					else
						site "$port" "storage sqlite $TMP/$name.db" "memory 16GiB"
					fi
				} >"$TMP/$name.Caddyfile"
				start "$name" "${PIN_CADDY[@]}"
				pid=${PIDS[-1]}
				wait_ready "$port" /1KB
				url="http://127.0.0.1:$port/$size?rss=%d"
				# warm the server's pools and buffers on other URLs first
				"${PIN_LOAD[@]}" "$TMP/fill" -url "$url" -from 100000000 -n 500 -c "$FILL_CONNS" >/dev/null ||
					die "$name: warming failed"
				sleep 1
				before=$(rss_kb "$pid")
				out=$("${PIN_LOAD[@]}" "$TMP/fill" -url "$url" -n "$n" -c "$FILL_CONNS" -size "$(size_bytes "$size")") ||
					die "$name: fill failed: $out"
				sleep 1
				after=$(rss_kb "$pid")
				out=$("$TMP/fill" -url "$url" -n 100 -c 1 -hit) || die "$name: the first entries do not hit after the fill: $out"
				RS[$store,$size,$n]=$(((after - before) * 1024 / n))
				RSR[$store,$size,$n]="$before $after"
				printf 'rss %-9s %-5s %7d entries: %6d B/entry (%d -> %d KiB)\n' "$store" "$size" "$n" \
					"${RS[$store,$size,$n]}" "$before" "$after" >&2
				stop_caddy "$pid"
				rm -f "$TMP/$name.db"*
			done
		done
	done
	RSS_LOADS+=("after: $(cut -d' ' -f1-3 /proc/loadavg)")
fi

# --- scale -----------------------------------------------------------------

# SC_RPS[name] / SC_EFF / SC_P99 / SC_MAX = one figure per round, for the
# names small and big (SQLite) and redis-small and redis-big.
declare -A SC_RPS SC_EFF SC_P99 SC_MAX
SCALE_LOADS=()

# scale_hits round name port entries pid...: one hit run of SCALE_CONNS
# clients on random ones of the first `entries` entries of the site on port,
# for SCALE_DURATION; appends its figures to SC_*[name], requests per
# CPU-second counted over the CPU time of the pids.
scale_hits() {
	local round=$1 name=$2 port=$3 n=$4 out c0 c1
	shift 4
	c0=$(cpu_ticks "$@")
	out=$("${PIN_LOAD[@]}" "$TMP/fill" -url "http://127.0.0.1:$port/1KB?n=%d" -n "$n" \
		-c "$SCALE_CONNS" -duration "$SCALE_DURATION" -size 1024 -hit) || die "scale hits on $name failed: $out"
	c1=$(cpu_ticks "$@")
	SC_RPS[$name]+="$(printf '%.0f' "$(jget rps "$out")") "
	SC_EFF[$name]+="$(awk -v n="$(jget requests "$out")" -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN { if (t > 0) printf "%.0f", n * hz / t; else print 0 }') "
	SC_P99[$name]+="$(jget p99_ms "$out") "
	SC_MAX[$name]+="$(jget max_ms "$out") "
	printf 'scale round %d  %-11s %8s rps  p99 %s ms\n' "$round" "$name" "$(jget rps "$out")" "$(jget p99_ms "$out")" >&2
}

if has scale; then
	sc_admin=$(free_port)
	sc_ports=("$(free_port)" "$(free_port)")
	sc_names=(small big)
	sc_count=("$SCALE_SMALL" "$SCALE_N")
	{
		global scale "127.0.0.1:$sc_admin"
		for i in 0 1; do
			site "${sc_ports[$i]}" "storage sqlite {" "	path $TMP/${sc_names[$i]}.db" "	sweep_interval $SCALE_SWEEP" "}" "memory off" "storage_timeout 5s"
		done
	} >"$TMP/scale.Caddyfile"
	SCALE_LOADS+=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
	# one entry stored by Caddy in each file: the template of the fill
	start scale "${PIN_CADDY[@]}"
	pid=${PIDS[-1]}
	for i in 0 1; do
		wait_ready "${sc_ports[$i]}" "/1KB?n=tpl"
		wait_hit "http://127.0.0.1:${sc_ports[$i]}/1KB?n=tpl" 10 || die "scale: the template entry is not stored"
	done
	stop_caddy "$pid"
	for i in 0 1; do
		echo "bench: scale: storing ${sc_count[$i]} entries in ${sc_names[$i]}.db" >&2
		out=$("$TMP/scale" -db "$TMP/${sc_names[$i]}.db" -n "${sc_count[$i]}") || die "scale fill failed: $out"
		echo "bench: scale: $out" >&2
		if [[ $i == 1 ]]; then
			SC_FILL_S=$(printf '%.0f' "$(jget seconds "$out")")
			SC_TPL_KEY=$(grep -o '"template_key": *"[^"]*"' <<<"$out" | sed 's/.*: *"//; s/"$//')
		fi
	done
	SC_DB_MB=$(du -m "$TMP/big.db" | cut -f1)
	# start and first hit on the big file
	t0=$(date +%s%N)
	start scale "${PIN_CADDY[@]}"
	pid=${PIDS[-1]}
	wait_hit "http://127.0.0.1:${sc_ports[1]}/1KB?n=123" 30 || die "scale: no hit 30s after the start"
	t1=$(date +%s%N)
	SC_START_MS=$(((t1 - t0) / 1000000))
	echo "bench: scale: start and first hit ${SC_START_MS} ms" >&2
	for round in $(seq "$SCALE_ROUNDS"); do
		for i in 0 1; do
			scale_hits "$round" "${sc_names[$i]}" "${sc_ports[$i]}" "${sc_count[$i]}" "$pid"
		done
	done
	SCALE_LOADS+=("after the hit rounds: $(cut -d' ' -f1-3 /proc/loadavg)")
	admin="http://127.0.0.1:$sc_admin"
	lt=""
	for _ in 1 2 3; do
		t=$(curl -fsS -o "$TMP/list.json" -w '%{time_total}' "$admin/cache/entries?limit=100") || die "scale: listing failed"
		lt+="$t "
	done
	SC_LIST_S=$(median "$lt")
	SC_LIST_N=$(grep -c '"key":' "$TMP/list.json" || true)
	# expiry sweep: SCALE_EXPIRED entries that expire 1 s after they are
	# stored, written while Caddy runs (its own sweep is SCALE_SWEEP away);
	# SWEEP_CONNS clients hit random entries for SWEEP_LOAD, once without a
	# sweep, once with the sweep started through POST /cache/expired (the
	# deletion the periodic sweep runs) a fifth into the window
	out=$("$TMP/scale" -db "$TMP/big.db" -key "$SC_TPL_KEY" -from $((SCALE_N + 1000000)) -n "$SCALE_EXPIRED" -tags 0 -expire 1s) ||
		die "scale: storing the expiring entries failed: $out"
	sleep 2
	expired_count() {
		jget removed "$(curl -fsS -X POST -H 'Content-Type: application/json' -d '{"dry_run":true}' "$admin/cache/expired" | tr -d '\n')"
	}
	SC_EXPIRED_BEFORE=$(expired_count)
	hits_url="http://127.0.0.1:${sc_ports[1]}/1KB?n=%d"
	out=$("${PIN_LOAD[@]}" "$TMP/fill" -url "$hits_url" -n "$SCALE_N" -c "$SWEEP_CONNS" -duration "$SWEEP_LOAD" -size 1024 -hit) ||
		die "scale hits before the sweep failed: $out"
	SC_QUIET_P99=$(jget p99_ms "$out") SC_QUIET_MAX=$(jget max_ms "$out") SC_QUIET_RPS=$(printf '%.0f' "$(jget rps "$out")")
	"${PIN_LOAD[@]}" "$TMP/fill" -url "$hits_url" -n "$SCALE_N" -c "$SWEEP_CONNS" -duration "$SWEEP_LOAD" -size 1024 -hit \
		>"$TMP/sweep-hits.json" 2>&1 &
	hits_pid=$!
	PIDS+=("$hits_pid")
	sleep "$(awk -v d="${SWEEP_LOAD%s}" 'BEGIN { print d / 5 }')"
	SC_SWEEP_S=$(curl -fsS -o "$TMP/sweep.json" -w '%{time_total}' -X POST -H 'Content-Type: application/json' \
		-d '{}' "$admin/cache/expired") || die "scale: POST /cache/expired failed"
	SC_SWEEP_N=$(jget removed "$(tr -d '\n' <"$TMP/sweep.json")")
	wait "$hits_pid" || die "scale hits during the sweep failed: $(cat "$TMP/sweep-hits.json")"
	forget "$hits_pid"
	out=$(cat "$TMP/sweep-hits.json")
	SC_SWEEP_P99=$(jget p99_ms "$out") SC_SWEEP_MAX=$(jget max_ms "$out") SC_SWEEP_RPS=$(printf '%.0f' "$(jget rps "$out")")
	SC_EXPIRED_AFTER=$(expired_count)
	echo "bench: scale: sweep of $SC_SWEEP_N entries in ${SC_SWEEP_S}s; hits p99 ${SC_SWEEP_P99} ms, max ${SC_SWEEP_MAX} ms (without: ${SC_QUIET_P99}, ${SC_QUIET_MAX})" >&2
	SC_PURGE_S=$(curl -fsS -o "$TMP/purge.json" -w '%{time_total}' -X POST -H 'Content-Type: application/json' \
		-d '{"tag":"t0"}' "$admin/cache/purge") || die "scale: tag purge failed"
	SC_PURGE_N=$(jget removed "$(tr -d '\n' <"$TMP/purge.json")")
	echo "bench: scale: listing ${SC_LIST_S}s, tag purge of $SC_PURGE_N entries ${SC_PURGE_S}s" >&2
	SCALE_LOADS+=("after: $(cut -d' ' -f1-3 /proc/loadavg)")
	stop_caddy "$pid"
fi

# The same hit test on Redis: databases 2 (SCALE_SMALL entries) and 3
# (SCALE_N) of the script's redis-server, each behind a site with `memory
# off`, filled by bench/scale from one entry Caddy stored in each.
SR_DBS=(2 3)
if has scale && [[ $SCALE_REDIS == 1 ]]; then
	sr_ports=("$(free_port)" "$(free_port)")
	sr_names=(redis-small redis-big)
	for i in 0 1; do
		redis-cli -h 127.0.0.1 -p "$P_REDIS" -n "${SR_DBS[$i]}" flushdb >/dev/null || die "scale: emptying Redis database ${SR_DBS[$i]} failed"
	done
	{
		global scale-redis
		for i in 0 1; do
			site "${sr_ports[$i]}" "storage redis redis://127.0.0.1:$P_REDIS/${SR_DBS[$i]}" "memory off" "storage_timeout 5s"
		done
	} >"$TMP/scale-redis.Caddyfile"
	SCALE_LOADS+=("Redis, before: $(cut -d' ' -f1-3 /proc/loadavg)")
	start scale-redis "${PIN_CADDY[@]}"
	pid=${PIDS[-1]}
	for i in 0 1; do
		wait_ready "${sr_ports[$i]}" "/1KB?n=tpl"
		wait_hit "http://127.0.0.1:${sr_ports[$i]}/1KB?n=tpl" 10 || die "scale: the template entry is not stored in Redis"
		url="redis://127.0.0.1:$P_REDIS/${SR_DBS[$i]}"
		echo "bench: scale: storing ${sc_count[$i]} entries in $url" >&2
		out=$("$TMP/scale" -redis "$url" -n "${sc_count[$i]}") || die "scale fill of Redis failed: $out"
		echo "bench: scale: $out" >&2
		if [[ $i == 1 ]]; then SR_FILL_S=$(printf '%.0f' "$(jget seconds "$out")"); fi
		keys=$(redis-cli -h 127.0.0.1 -p "$P_REDIS" -n "${SR_DBS[$i]}" dbsize)
		((keys > sc_count[i])) || die "scale: Redis database ${SR_DBS[$i]} holds $keys keys after storing ${sc_count[$i]} entries"
	done
	SR_MB=$(redis-cli -h 127.0.0.1 -p "$P_REDIS" info memory | awk -F: '/^used_memory:/ {printf "%.0f", $2 / 1048576}')
	wait_hit "http://127.0.0.1:${sr_ports[1]}/1KB?n=123" 10 || die "scale: an entry stored in Redis by bench/scale is not a hit"
	for round in $(seq "$SCALE_ROUNDS"); do
		for i in 0 1; do
			scale_hits "$round" "${sr_names[$i]}" "${sr_ports[$i]}" "${sc_count[$i]}" "$pid" "$REDIS_PID"
		done
	done
	SCALE_LOADS+=("Redis, after the hit rounds: $(cut -d' ' -f1-3 /proc/loadavg)")
	stop_caddy "$pid"
fi

# --- report ----------------------------------------------------------------

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

# load_report: the sections of the load part.
load_report() {
	local s c i
	echo "## Hits: requests per second of a real Caddy (load part)"
	echo
	echo "wrk \`-t$THREADS -c$CONNS -d$DURATION\` (keep-alive, HTTP/1.1)."
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
		echo "\`@REDIS@\` is a redis-server $(redis_version) on loopback started by the script (\`--save '' --appendonly no --maxmemory 0\`)."
	fi
	echo
	echo "Load average (1, 5, 15 min); the machine is shared, read the figures with it:"
	echo
	for l in "${LOADS[@]}"; do echo "- $l"; done
	if ((IDLE_WAIT > 0)); then
		echo "- each run waited up to ${IDLE_WAIT}s for the machine to be under ${IDLE_BUSY}% busy; $WAITS runs started busier"
	fi
	echo
	echo "### Requests per CPU-second of the Caddy under test"
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
	echo "### Requests per second"
	echo
	table R rps
	echo
	echo "### Every round"
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
		echo "### go test benchmarks"
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

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# meets value op limit: "yes" or "no" ("—" without a value).
meets() {
	[[ -n $1 && $1 != - ]] || { echo "—"; return; }
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == ">=") ? v >= l : v <= l; print ok ? "yes" : "no" }'
}

# label target: what a load target measures, in the summary.
label() {
	case $1 in
	cache-memory) echo "memory store" ;;
	cache-sqlite-hot) echo "hot tier (in front of SQLite)" ;;
	cache-sqlite-nohot) echo "SQLite, \`memory off\`" ;;
	cache-redis-hot) echo "hot tier (in front of Redis)" ;;
	cache-redis-nohot) echo "Redis, \`memory off\`" ;;
	*) echo "\`$1\`" ;;
	esac
}

# div a b [digits]: a / b.
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "-" }'; }

# headline: one table of every figure next to its reference.
headline() {
	local s t goal r e b n store lim fig
	echo "| figure | this cache | reference (same run) | ratio | goal | met |"
	echo "| --- | ---: | ---: | ---: | ---: | :---: |"
	if has load; then
		for s in 1KB 16KB; do
			[[ " $SIZES " == *" $s "* ]] || continue
			for t in reverse_proxy "${T_NAME[@]}"; do
				goal="—"
				case $t in
				cache-memory | cache-sqlite-hot | cache-redis-hot) goal="≥ 1.0" ;;
				cache-sqlite-nohot) [[ $s == 1KB ]] && goal="≥ 0.7" ;;
				esac
				r=$(ratio "${E[$s,$t]}" "${E[$s,respond]}")
				e=$(ratio "${R[$s,$t]}" "${R[$s,respond]}")
				lim=${goal#≥ }
				fig="hit $s, $(label "$t")"
				[[ $t == reverse_proxy ]] && fig="$s through \`reverse_proxy\`, no cache"
				echo "| $fig: req/CPU-s (rps) | $(median "${E[$s,$t]}") ($(median "${R[$s,$t]}")) | \`respond\` $(median "${E[$s,respond]}") ($(median "${R[$s,respond]}")) | $r ($e) | $goal | $([[ $goal == "—" ]] && echo "—" || meets "$r" ">=" "$lim") |"
			done
		done
	fi
	if has rss; then
		for store in "${RSS_STORES[@]}"; do
			for s in $RSS_SIZES; do
				for n in $RSS_COUNTS; do
					b=$(size_bytes "$s")
					lim=$(awk -v b="$b" 'BEGIN { printf "%d", 1.1 * b + 1024 }')
					e=${RS[$store,$s,$n]}
					echo "| RSS growth per stored $s entry, $store, $n entries | $(div "$e" 1024 1) KiB | body $(div "$b" 1024 1) KiB | $(div "$e" "$b") × body | ≤ $(div "$lim" 1024 1) KiB | $(meets "$e" "<=" "$lim") |"
				done
			done
		done
	fi
	if has fill; then
		for t in cache-memory cache-sqlite; do
			goal="≤ 1.2"
			[[ $t == cache-sqlite ]] && goal="≤ 1.5"
			r=$(ratio "${FT[$t]}" "${FT[reverse_proxy]}")
			echo "| fill: $FILL_N distinct $FILL_SIZE misses, $FILL_CONNS clients, $( [[ $t == cache-memory ]] && echo "memory store" || echo "default SQLite (hot tier on)") | $(median "${FT[$t]}") s | \`reverse_proxy\` $(median "${FT[reverse_proxy]}") s | $r | $goal | $(meets "$r" "<=" "${goal#≤ }") |"
		done
	fi
	if has scale; then
		r=$(ratio "${SC_EFF[big]}" "${SC_EFF[small]}")
		e=$(ratio "${SC_RPS[big]}" "${SC_RPS[small]}")
		echo "| scale: hit of a random one of $SCALE_N stored 1 KB entries, SQLite \`memory off\`: req/CPU-s (rps) | $(median "${SC_EFF[big]}") ($(median "${SC_RPS[big]}")) | $SCALE_SMALL entries: $(median "${SC_EFF[small]}") ($(median "${SC_RPS[small]}")) | $r ($e) | ≥ 0.9 | $(meets "$r" ">=" 0.9) |"
		echo "| scale: Caddy start to first hit, $SCALE_N entries | $SC_START_MS ms | — | — | ≤ 1000 ms | $(meets "$SC_START_MS" "<=" 1000) |"
		echo "| scale: \`GET /cache/entries?limit=100\`, $SCALE_N entries | $(div "$SC_LIST_S" 0.001 0) ms | — | — | ≤ 1000 ms | $(meets "$SC_LIST_S" "<=" 1) |"
		echo "| scale: tag purge of $SC_PURGE_N entries (1 % of each file) | $(div "$SC_PURGE_S" 0.001 0) ms | — | — | ≤ 1000 ms | $(meets "$SC_PURGE_S" "<=" 1) |"
		echo "| scale: hit latency, $SWEEP_CONNS clients, during the sweep of $SC_SWEEP_N expired entries: p99 (max) | $SC_SWEEP_P99 ms ($SC_SWEEP_MAX ms) | without a sweep: $SC_QUIET_P99 ms ($SC_QUIET_MAX ms) | $(div "$SC_SWEEP_P99" "$SC_QUIET_P99") | p99 ≤ 10 ms | $(meets "$SC_SWEEP_P99" "<=" 10) |"
		if [[ $SCALE_REDIS == 1 ]]; then
			r=$(ratio "${SC_EFF[redis-big]}" "${SC_EFF[redis-small]}")
			e=$(ratio "${SC_RPS[redis-big]}" "${SC_RPS[redis-small]}")
			echo "| scale: the same hit test on Redis, $SCALE_N entries, \`memory off\`: req/CPU-s of Caddy and redis-server (rps) | $(median "${SC_EFF[redis-big]}") ($(median "${SC_RPS[redis-big]}")) | $SCALE_SMALL entries: $(median "${SC_EFF[redis-small]}") ($(median "${SC_RPS[redis-small]}")) | $r ($e) | ≥ 0.9 | $(meets "$r" ">=" 0.9) |"
		else
			echo "| scale: the same hit test on Redis | not measured (\`SCALE_REDIS=0\`) | | | ≥ 0.9 | — |"
		fi
	fi
	echo
	echo "References of other caches:"
	echo
	for n in "${REF_NOTES[@]}"; do echo "- $n"; done
}

fill_report() {
	local t
	echo "## Fill: time of distinct misses (fill part)"
	echo
	echo "\`bench/fill\` requests $FILL_N distinct URLs (\`/$FILL_SIZE?fill=<n>\`) from $FILL_CONNS concurrent clients, pinned"
	echo "with the origin; every request is a miss (checked) and, on the cache sites, stores an entry (checked:"
	echo "the first 100 hit afterwards). One Caddy with three sites: \`reverse_proxy\` alone, \`cache { storage memory 4GiB }\`"
	echo "and \`cache { storage sqlite <file> }\` (the default layout: the hot tier in front of SQLite)."
	echo "$FILL_ROUNDS rounds, interleaved, each on new URLs; the figure is the median, the ratio the median of the per-round ratios."
	echo
	echo "| target | seconds, median | every round |"
	echo "| --- | ---: | --- |"
	for t in "${FILL_COLS[@]}"; do echo "| $t | $(median "${FT[$t]}") | ${FT[$t]% } |"; done
	echo
	echo "Load average:"
	echo
	for l in "${FILL_LOADS[@]}"; do echo "- $l"; done
}

rss_report() {
	local store s n
	echo "## RSS per stored entry (rss part)"
	echo
	echo "A fresh Caddy per line, with one site: \`cache { storage memory 16GiB }\` (memory) or"
	echo "\`cache { storage sqlite <file>; memory 16GiB }\` (hot-tier: the hot tier holds every entry)."
	echo "After 500 warm-up requests on other URLs, VmRSS of \`/proc/<pid>/status\` is read before and one"
	echo "second after \`bench/fill\` stores the entries ($FILL_CONNS clients); the figure is the growth divided by the"
	echo "entry count (it includes garbage not yet collected: what the process holds)."
	echo
	echo "| store | body | entries | RSS before, KiB | after, KiB | growth per entry, B |"
	echo "| --- | --- | ---: | ---: | ---: | ---: |"
	for store in "${RSS_STORES[@]}"; do
		for s in $RSS_SIZES; do
			for n in $RSS_COUNTS; do
				read -r b a <<<"${RSR[$store,$s,$n]}"
				echo "| $store | $s | $n | $b | $a | ${RS[$store,$s,$n]} |"
			done
		done
	done
	echo
	echo "Load average:"
	echo
	for l in "${RSS_LOADS[@]}"; do echo "- $l"; done
}

scale_report() {
	local n
	echo "## Scale (scale part)"
	echo
	echo "Two SQLite files with the module's defaults but \`sweep_interval $SCALE_SWEEP\`, each behind a site with"
	echo "\`memory off\` (so that hits read SQLite, not the hot tier): $SCALE_SMALL and $SCALE_N entries of 1 KB"
	echo "(one repeated letter: zstd makes each row small), copied by \`bench/scale\` through the store's API"
	echo "from one entry Caddy stored ($SCALE_N in ${SC_FILL_S}s; the file is $SC_DB_MB MB). Entry n has"
	echo "the tag \`t<n mod 100>\`: a tag names 1 % of the entries."
	echo
	echo "- start and first hit: from starting Caddy on both files to the first hit on the big one, polled every 10 ms: $SC_START_MS ms"
	echo "- hits: \`bench/fill\` with $SCALE_CONNS clients for $SCALE_DURATION on random entries, $SCALE_ROUNDS rounds, interleaved:"
	echo
	echo "  | entries | rps | req/CPU-s | p99 ms | max ms |"
	echo "  | ---: | --- | --- | --- | --- |"
	echo "  | $SCALE_SMALL | ${SC_RPS[small]% } | ${SC_EFF[small]% } | ${SC_P99[small]% } | ${SC_MAX[small]% } |"
	echo "  | $SCALE_N | ${SC_RPS[big]% } | ${SC_EFF[big]% } | ${SC_P99[big]% } | ${SC_MAX[big]% } |"
	echo
	echo "- \`GET /cache/entries?limit=100\` (median of 3): ${SC_LIST_S}s, $SC_LIST_N entries returned"
	echo "- expiry sweep: $SCALE_EXPIRED entries stored by \`bench/scale\` while Caddy runs, each expiring 1 s after it was"
	echo "  stored; expired entries (dry run of \`POST /cache/expired\`): $SC_EXPIRED_BEFORE. Then $SWEEP_CONNS clients hit random"
	echo "  entries for $SWEEP_LOAD twice: without a sweep ($SC_QUIET_RPS rps, p99 $SC_QUIET_P99 ms, max $SC_QUIET_MAX ms), and with"
	echo "  \`POST /cache/expired\` (the deletion of the periodic sweep) started after a fifth of it: it removed $SC_SWEEP_N"
	echo "  entries in ${SC_SWEEP_S}s; hits $SC_SWEEP_RPS rps, p99 $SC_SWEEP_P99 ms, max $SC_SWEEP_MAX ms. Expired entries left: $SC_EXPIRED_AFTER"
	if awk -v s="$SC_SWEEP_S" -v d="${SWEEP_LOAD%s}" 'BEGIN { exit !(s > 0.8 * d) }'; then
		echo "  The sweep outlasted the hits (it ran ${SC_SWEEP_S}s, the hits $SWEEP_LOAD from a fifth in): the figures cover its first part only."
	fi
	echo "- tag purge \`{\"tag\": \"t0\"}\`: $SC_PURGE_N entries removed in ${SC_PURGE_S}s"
	if [[ $SCALE_REDIS == 1 ]]; then
		echo
		echo "The same hit test on Redis, after the SQLite part: databases ${SR_DBS[0]} and ${SR_DBS[1]} of the script's redis-server"
		echo "$(redis_version) (loopback, pinned to CPU $REDIS_CPU, \`--save '' --appendonly no --maxmemory 0\`), each behind a site with"
		echo "\`storage redis redis://…/<db>\` and \`memory off\`, in a fresh Caddy. Caddy stores \`/1KB?n=tpl\` in each; \`bench/scale -redis\`"
		echo "copies it under the same keys as for SQLite, in pipelines of SETs as the store's Put writes them"
		echo "($SCALE_N in ${SR_FILL_S}s; Redis then uses $SR_MB MB). Requests per CPU-second count the CPU time of Caddy and redis-server."
		echo
		echo "  | entries | rps | req/CPU-s | p99 ms | max ms |"
		echo "  | ---: | --- | --- | --- | --- |"
		echo "  | $SCALE_SMALL | ${SC_RPS[redis-small]% } | ${SC_EFF[redis-small]% } | ${SC_P99[redis-small]% } | ${SC_MAX[redis-small]% } |"
		echo "  | $SCALE_N | ${SC_RPS[redis-big]% } | ${SC_EFF[redis-big]% } | ${SC_P99[redis-big]% } | ${SC_MAX[redis-big]% } |"
	fi
	echo
	echo "Load average:"
	echo
	for n in "${SCALE_LOADS[@]}"; do echo "- $n"; done
}

report() {
	echo "# Benchmark results"
	echo
	echo "Generated by \`bench/run.sh\` ($PARTS) on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(go version 2>/dev/null | awk '{print $3}')."
	echo "CPU: $cpu, $(nproc) CPUs. Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $LOAD_END."
	if [[ -n ${NOTE:-} ]]; then
		echo
		echo "$NOTE"
	fi
	echo
	echo "## Summary"
	echo
	echo "Each figure next to its reference measured in the same run, with the goal of issue 16. Hit ratios"
	echo "are in requests per CPU-second of the server side (in parentheses: in requests per second); see the"
	echo "sections below for how each figure is measured."
	echo
	headline
	if has load; then echo; load_report; fi
	if has fill; then echo; fill_report; fi
	if has rss; then echo; rss_report; fi
	if has scale; then echo; scale_report; fi
}

# json: the headline figures, for bench/charts.
json() {
	local s t store n sep
	printf '{\n  "generated": "%s",\n  "commit": "%s",\n  "load_start": "%s",\n  "load_end": "%s",\n' \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit" "$LOAD_START" "$LOAD_END"
	printf '  "hit_ratio": ['
	sep=
	if has load; then
		for s in $SIZES; do
			for t in reverse_proxy "${T_NAME[@]}"; do
				printf '%s\n    {"size": "%s", "target": "%s", "ratio": %s, "rps_ratio": %s}' "$sep" "$s" "$t" \
					"$(ratio "${E[$s,$t]}" "${E[$s,respond]}")" "$(ratio "${R[$s,$t]}" "${R[$s,respond]}")"
				sep=,
			done
		done
	fi
	printf '\n  ],\n  "rss": ['
	sep=
	if has rss; then
		for store in "${RSS_STORES[@]}"; do
			for s in $RSS_SIZES; do
				for n in $RSS_COUNTS; do
					printf '%s\n    {"store": "%s", "size": "%s", "body": %s, "entries": %s, "bytes_per_entry": %s}' \
						"$sep" "$store" "$s" "$(size_bytes "$s")" "$n" "${RS[$store,$s,$n]}"
					sep=,
				done
			done
		done
	fi
	printf '\n  ],\n  "fill": ['
	sep=
	if has fill; then
		for t in "${FILL_COLS[@]}"; do
			printf '%s\n    {"target": "%s", "entries": %s, "size": "%s", "seconds": %s}' "$sep" "$t" "$FILL_N" "$FILL_SIZE" "$(median "${FT[$t]}")"
			sep=,
		done
	fi
	printf '\n  ]\n}\n'
}

report >"$TMP/results.md"
cat "$TMP/results.md"
if [[ -n $OUT ]]; then
	cp "$TMP/results.md" "$OUT"
	echo "bench: wrote $OUT" >&2
fi
if [[ -n $JSON ]]; then
	json >"$JSON"
	echo "bench: wrote $JSON" >&2
	if [[ $CHARTS == 1 ]]; then
		go run ./bench/charts -in "$JSON" -out "$(dirname "$JSON")" || die "drawing the charts failed"
	fi
fi
