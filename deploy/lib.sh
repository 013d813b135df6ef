# shellcheck shell=bash
# Shared functions of deploy/up, deploy/down and deploy/test. Sourced, never run.
#
# The caller sets SCRIPT (its name for messages, e.g. "deploy/up") and ROOT (the repository root,
# resolved from the script's own location), then sources this file. Nothing here starts or stops a
# process by name: every process is found through the pid file written when it was started.

# Where the user ran the script from (the scripts then work from the repository root): a relative
# STATE_DIR is taken from here, and paths are shown relative to the root only when run from it.
CALLER_DIR="$PWD"

# Debian keeps nginx, runuser and friends in /usr/sbin, which is not on a normal user's PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH="$PATH:/sbin" ;; esac
export PATH

# ---- messages ------------------------------------------------------------------------------------

say() { printf '%s: %s\n' "$SCRIPT" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT" "$*" >&2
    exit 1
}
# A banner before each long step, so a CI log reads as a list of steps.
header() { printf '\n==== %s: %s\n' "$SCRIPT" "$*"; }

# ---- settings (environment variables, documented in README.md) -----------------------------------

# shellcheck disable=SC2034 # the paths set here are used by the scripts that source this file
load_settings() {
    NGINX_PORT="${NGINX_PORT:-8080}"
    EDGE_PORT="${EDGE_PORT:-8081}"
    EDGE_ADMIN_PORT="${EDGE_ADMIN_PORT:-9081}"
    ORIGIN_PORT="${ORIGIN_PORT:-8082}"
    REDIS_PORT="${REDIS_PORT:-6380}"
    PG_PORT="${PG_PORT:-5433}"
    STATE_DIR="${STATE_DIR:-$ROOT/state}"
    # Address blocks (CIDR or address, separated by spaces or commas) whose X-Forwarded-For nginx
    # believes: the CDN's in production; locally the machine itself.
    NGINX_TRUSTED_CDN="${NGINX_TRUSTED_CDN:-127.0.0.1}"

    local name value
    for name in NGINX_PORT EDGE_PORT EDGE_ADMIN_PORT ORIGIN_PORT REDIS_PORT PG_PORT; do
        value="${!name}"
        if ! [[ $value =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
            die "$name=$value is not a TCP port (1-65535)"
        fi
        printf -v "$name" '%d' "$((10#$value))"
    done
    local -A seen=()
    for name in NGINX_PORT EDGE_PORT EDGE_ADMIN_PORT ORIGIN_PORT REDIS_PORT PG_PORT; do
        value="${!name}"
        [[ -z ${seen[$value]:-} ]] || die "$name and ${seen[$value]} are both $value: give each service its own port"
        seen[$value]=$name
    done

    # REDIS_CLUSTER=1: a Redis Cluster of six nodes on REDIS_CLUSTER_PORTS instead of the single
    # redis-server on REDIS_PORT (see "Redis Cluster" in README.md).
    REDIS_CLUSTER="${REDIS_CLUSTER:-0}"
    [[ $REDIS_CLUSTER == [01] ]] ||
        die "REDIS_CLUSTER=$REDIS_CLUSTER: 1 runs a Redis Cluster of six nodes, 0 (the default) one redis-server"
    REDIS_CLUSTER_PORTS="${REDIS_CLUSTER_PORTS:-7001-7006}"
    REDIS_CLUSTER_NODES=()
    if ((REDIS_CLUSTER)); then
        local item first last port
        for item in ${REDIS_CLUSTER_PORTS//,/ }; do
            if [[ $item =~ ^([0-9]{1,5})-([0-9]{1,5})$ ]]; then
                first=$((10#${BASH_REMATCH[1]})) last=$((10#${BASH_REMATCH[2]}))
            elif [[ $item =~ ^[0-9]{1,5}$ ]]; then
                first=$((10#$item)) last=$first
            else
                die "REDIS_CLUSTER_PORTS: $item is neither a port nor a range of ports such as 7001-7006"
            fi
            ((first <= last && last - first < 6)) ||
                die "REDIS_CLUSTER_PORTS: $item is not a range of up to six ports"
            for ((port = first; port <= last; port++)); do
                REDIS_CLUSTER_NODES+=("$port")
            done
        done
        ((${#REDIS_CLUSTER_NODES[@]} == 6)) ||
            die "REDIS_CLUSTER_PORTS=$REDIS_CLUSTER_PORTS names ${#REDIS_CLUSTER_NODES[@]} ports: the cluster (three primaries, three replicas) needs six"
        for port in "${REDIS_CLUSTER_NODES[@]}"; do
            # Each node also listens on its port + 10000: the cluster bus, where nodes gossip.
            ((port >= 1 && port <= 55535)) ||
                die "REDIS_CLUSTER_PORTS: $port is not a port from 1 to 55535 (its cluster bus takes port + 10000)"
            for value in "$port" "$((port + 10000))"; do
                [[ -z ${seen[$value]:-} ]] ||
                    die "REDIS_CLUSTER_PORTS: port $value (node $port or its cluster bus) is also ${seen[$value]}"
                seen[$value]="node $port of REDIS_CLUSTER_PORTS (or its cluster bus)"
            done
        done
    fi

    [[ $STATE_DIR == /* ]] || STATE_DIR="$CALLER_DIR/$STATE_DIR"
    STATE_DIR="$(realpath -m -s -- "$STATE_DIR")"
    [[ -n $STATE_DIR && $STATE_DIR != "$CALLER_DIR" ]] || die "STATE_DIR must name a folder of its own"
    [[ $STATE_DIR != *"'"* ]] || die "STATE_DIR must not contain a single quote: $STATE_DIR"

    local block
    TRUSTED_CDN_BLOCKS=()
    for block in ${NGINX_TRUSTED_CDN//,/ }; do
        [[ $block =~ ^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$ ]] ||
            die "NGINX_TRUSTED_CDN: $block is not an address or CIDR block"
        TRUSTED_CDN_BLOCKS+=("$block")
    done
    ((${#TRUSTED_CDN_BLOCKS[@]} > 0)) || die "NGINX_TRUSTED_CDN names no address block"

    # Where cargo puts the binaries; cargo runs from the root, so a relative path is from there.
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"

    LOG_DIR="$STATE_DIR/logs"
    PID_DIR="$STATE_DIR/pids"
    REDIS_DIR="$STATE_DIR/redis"
    # One folder per node (REDIS_CLUSTER=1): <port>/ with its nodes.conf and AOF.
    REDIS_CLUSTER_DIR="$STATE_DIR/redis-cluster"
    PG_DIR="$STATE_DIR/pg"
    PG_DATA="$PG_DIR/data"
    PG_SOCK="$PG_DIR/sock"
    # nginx's prefix: its rendered config, pid, logs, temp files and micro-cache.
    NGINX_DIR="$STATE_DIR/nginx"
    NGINX_CONF="$NGINX_DIR/nginx.conf"
    NGINX_TEMPLATE="$ROOT/nginx/nginx.conf.template"
    # Served by nginx at /static/.
    STATIC_DIR="$ROOT/static"
    # Written by deploy/up; deploy/down --purge deletes only a folder that has it.
    STATE_MARK="$STATE_DIR/.flash-state"
}

# Shows a path as the user can type it: relative to the repository root when the script was run
# from there and the path is inside it, absolute otherwise.
show_path() {
    if [[ $CALLER_DIR -ef $ROOT && $1 == "$ROOT"/* ]]; then
        printf '%s' "${1#"$ROOT"/}"
    else
        printf '%s' "$1"
    fi
}

# How to run one of the deploy scripts ($1) from where the user is, with STATE_DIR when not default.
show_command() {
    local cmd
    if [[ $CALLER_DIR -ef $ROOT ]]; then cmd="./deploy/$1"; else cmd="$ROOT/deploy/$1"; fi
    [[ $STATE_DIR == "$ROOT/state" ]] || cmd="STATE_DIR=$STATE_DIR $cmd"
    printf '%s' "$cmd"
}

# ---- prerequisites -------------------------------------------------------------------------------

# Finds the PostgreSQL server binaries (initdb, postgres, pg_ctl) and prints their folder.
# Debian's `postgresql` package keeps them in /usr/lib/postgresql/<version>/bin, off the PATH.
find_pg_bin() {
    local dir found
    local -a candidates=()
    [[ -n ${PG_BIN:-} ]] && candidates+=("$PG_BIN")
    if command -v pg_config >/dev/null 2>&1 && dir="$(pg_config --bindir 2>/dev/null)"; then
        candidates+=("$dir")
    fi
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r)
    if found="$(command -v initdb 2>/dev/null)"; then
        candidates+=("$(dirname "$(readlink -f "$found")")")
    fi
    for dir in "${candidates[@]}"; do
        if [[ -x $dir/initdb && -x $dir/postgres && -x $dir/pg_ctl ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# Installs the Debian packages of whatever is missing among redis-server, the PostgreSQL server,
# nginx and curl (and, with --browser, chromium and chromedriver for the browser test): with
# apt-get when root, otherwise says what to run and exits non-zero.
ensure_packages() {
    local browser=false
    [[ ${1:-} != --browser ]] || browser=true
    local -a missing=() packages=()
    if ! command -v redis-server >/dev/null 2>&1; then
        missing+=("redis-server")
        packages+=("redis-server")
    fi
    if ! find_pg_bin >/dev/null; then
        missing+=("initdb/postgres")
        packages+=("postgresql")
    fi
    if ! command -v nginx >/dev/null 2>&1; then
        missing+=("nginx")
        packages+=("nginx-light")
    fi
    if ! command -v curl >/dev/null 2>&1; then
        missing+=("curl")
        packages+=("curl")
    fi
    if $browser && [[ ! -x /usr/bin/chromium ]]; then
        missing+=("/usr/bin/chromium")
        packages+=("chromium")
    fi
    if $browser && [[ ! -x /usr/bin/chromedriver ]]; then
        missing+=("/usr/bin/chromedriver")
        packages+=("chromium-driver")
    fi
    if ((${#packages[@]} == 0)); then
        say "prerequisites present: redis-server, PostgreSQL ($(find_pg_bin)), nginx, curl$($browser && printf ', chromium, chromedriver')"
        return 0
    fi

    if ((EUID != 0)); then
        {
            printf '%s: error: missing: %s\n' "$SCRIPT" "${missing[*]}"
            printf '%s: install the Debian packages %s as root, then run ./%s again:\n' \
                "$SCRIPT" "${packages[*]}" "$SCRIPT"
            printf '\n    sudo apt-get update && sudo apt-get install -y %s\n\n' "${packages[*]}"
        } >&2
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing: ${missing[*]}, and apt-get is not here to install ${packages[*]}: install them by hand"

    header "installing missing packages: ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null ||
        die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" </dev/null ||
        die "apt-get install ${packages[*]} failed"

    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after installing redis-server"
    find_pg_bin >/dev/null || die "initdb/postgres still missing after installing postgresql"
    command -v nginx >/dev/null 2>&1 || die "nginx still missing after installing nginx-light"
    command -v curl >/dev/null 2>&1 || die "curl still missing after installing curl"
    if $browser; then
        [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium still missing after installing chromium"
        [[ -x /usr/bin/chromedriver ]] || die "/usr/bin/chromedriver still missing after installing chromium-driver"
    fi
    say "installed ${packages[*]}"
}

ensure_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust (https://rustup.rs), then run ./$SCRIPT again"
}

# ---- processes -----------------------------------------------------------------------------------

# True while process $1 exists and is not a zombie: a service started in the background is
# reparented to init once its starter exits, and some inits reap late, or never.
pid_running() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    if stat="$(cat "/proc/$1/stat" 2>/dev/null)"; then
        stat="${stat##*) }"
        [[ ${stat%% *} != Z ]] || return 1
    fi
}

# Prints the pid recorded in pid file $1 when that process is alive and its command line contains
# $2 (so a pid reused by an unrelated process after a reboot is not taken for ours).
live_pid() {
    local file="$1" expect="$2" pid cmdline
    [[ -r $file ]] || return 1
    pid="$(head -n 1 "$file" 2>/dev/null)" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_running "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
        [[ $cmdline == *"$expect"* ]] || return 1
    fi
    printf '%s\n' "$pid"
}

# Stops the process recorded in pid file $2 (a service called $1, command line containing $3):
# signal $4 (default TERM; nginx gets QUIT, its graceful stop), up to 10 s for it to exit, then
# SIGKILL to it and to its own children (nginx's workers, found by parent pid, never by name).
# Removes the pid file.
stop_pid() {
    local name="$1" file="$2" expect="$3" signal="${4:-TERM}" pid
    if ! pid="$(live_pid "$file" "$expect")"; then
        if [[ -e $file ]]; then
            say "$name: not running (stale pid file removed)"
            rm -f "$file"
        else
            say "$name: not running"
        fi
        return 0
    fi
    say "$name: stopping pid $pid (SIG$signal)"
    kill "-$signal" "$pid" 2>/dev/null || true
    wait_exit "$name" "$pid"
    rm -f "$file"
    say "$name: stopped"
}

# Waits up to 10 s for process $2 (a service called $1), already signalled, to exit; then
# SIGKILL to it and to its own children.
wait_exit() {
    local name="$1" pid="$2" waited=0 child
    while pid_running "$pid"; do
        if ((waited >= 100)); then
            warn "$name: pid $pid still running after 10 s: SIGKILL"
            for child in $(child_pids "$pid"); do
                kill -KILL "$child" 2>/dev/null || true
            done
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Prints the pids of the children of process $1 (from /proc: their parent pid is $1).
child_pids() {
    local stat rest
    for stat in /proc/[0-9]*/stat; do
        rest="$(cat "$stat" 2>/dev/null)" || continue
        rest="${rest##*) }"
        rest="${rest#* }"
        [[ ${rest%% *} == "$1" ]] || continue
        stat="${stat#/proc/}"
        printf '%s\n' "${stat%/stat}"
    done
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---- Redis Cluster (REDIS_CLUSTER=1) -------------------------------------------------------------

# The pid file and the log of the cluster node on port $1.
redis_node_pid() { printf '%s/redis-cluster-%s.pid' "$PID_DIR" "$1"; }
redis_node_log() { printf '%s/redis-cluster-%s.log' "$LOG_DIR" "$1"; }

# Sets REDIS_NODE_ARGS to the arguments of redis-server for the cluster node on port $1, data in
# folder $2: the settings of the tests' cluster (tests/src/redis_cluster/node.rs says more).
# - cluster-node-timeout 1000: a primary unreachable for 1 s is failed over to its replica within
#   2 to 3 s (Redis's default, 15 s, stops a shard's sales for 16 s and more);
# - cluster-replica-validity-factor 0: the replica takes over however long it was cut off from
#   its primary, rather than leave the shard without a primary (the origins heal what it missed
#   from PostgreSQL);
# - cluster-require-full-coverage no: while one shard fails over, the others keep serving;
# - AOF with fsync every second and no RDB snapshots, like the single Redis;
# - repl-diskless-sync-delay 0: a replica joining gets its copy at once, not after 5 s.
# --dir comes first: Redis enters the folder as it reads it, and keeps nodes.conf there.
# shellcheck disable=SC2034 # REDIS_NODE_ARGS is used by deploy/up, which sources this file
redis_cluster_node_args() {
    REDIS_NODE_ARGS=(
        --dir "$2" --port "$1" --bind 127.0.0.1 --daemonize no
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000
        --cluster-replica-validity-factor 0 --cluster-require-full-coverage no
        --appendonly yes --appendfsync everysec --save "" --repl-diskless-sync-delay 0
    )
}

# The seed list of the services' config: every node, as `nodes = ["redis://127.0.0.1:7001/", ...]`.
redis_cluster_nodes_line() {
    local port line=""
    for port in "${REDIS_CLUSTER_NODES[@]}"; do
        line+="${line:+, }\"redis://127.0.0.1:$port/\""
    done
    printf 'nodes = [%s]\n' "$line"
}

# Points the [redis] section of the service config $1 at the cluster, in place: its `mode` line
# becomes `mode = "cluster"` followed by the `nodes` line (the section's old `nodes`, one line or
# several, goes); a section without a `mode` line gets both right after its header. The other
# sections and the comments are left as they are.
render_redis_cluster() {
    local conf="$1"
    awk -v nodes="$(redis_cluster_nodes_line)" '
        function header(line) { return line ~ /^[[:space:]]*\[/ }
        function redis(line) { return line ~ /^[[:space:]]*\[redis\][[:space:]]*(#.*)?$/ }
        # First pass: does the [redis] section have a mode line?
        NR == FNR {
            if (header($0)) in_redis = redis($0)
            else if (in_redis && $0 ~ /^[[:space:]]*mode[[:space:]]*=/) has_mode = 1
            next
        }
        FNR == 1 { in_redis = 0 }
        skipping { if ($0 ~ /\]/) skipping = 0; next }
        header($0) {
            in_redis = redis($0)
            print
            if (in_redis && !has_mode) { print "mode = \"cluster\""; print nodes }
            next
        }
        in_redis && /^[[:space:]]*nodes[[:space:]]*=/ { if ($0 !~ /\]/) skipping = 1; next }
        in_redis && /^[[:space:]]*mode[[:space:]]*=/ { print "mode = \"cluster\""; print nodes; next }
        { print }
    ' "$conf" "$conf" >"$conf.tmp"
    mv "$conf.tmp" "$conf"
    if ! grep -q '^mode = "cluster"$' "$conf" || ! grep -q '^nodes = \["redis://' "$conf"; then
        die "redis cluster: $(show_path "$conf") has no [redis] section to point at the cluster"
    fi
}

# Stops the cluster nodes deploy/up started (every pids/redis-cluster-<port>.pid, whatever
# REDIS_CLUSTER says now): SIGTERM to all of them first, so that no replica outlives its primary
# long enough to take its place, then up to 10 s each to exit (then SIGKILL).
stop_redis_cluster() {
    local file port pid
    local -a ports=() pids=()
    for file in "$PID_DIR"/redis-cluster-*.pid; do
        [[ -e $file ]] || continue
        port="${file##*/redis-cluster-}"
        port="${port%.pid}"
        if pid="$(live_pid "$file" redis-server)"; then
            say "redis cluster: stopping node $port, pid $pid (SIGTERM)"
            kill -TERM "$pid" 2>/dev/null || true
            ports+=("$port")
            pids+=("$pid")
        else
            say "redis cluster: node $port not running (stale pid file removed)"
            rm -f "$file"
        fi
    done
    local i
    for i in "${!pids[@]}"; do
        wait_exit "redis cluster node ${ports[i]}" "${pids[i]}"
        rm -f "$(redis_node_pid "${ports[i]}")"
    done
    ((${#pids[@]} == 0)) || say "redis cluster: stopped (${#pids[@]} nodes)"
}

# ---- PostgreSQL as the right user ----------------------------------------------------------------

# PostgreSQL refuses to run as root. Prints the user to run it as: empty when not root (run as
# ourselves); when root, the owner of an existing data folder, else `postgres`, else `nobody`.
pg_user() {
    ((EUID == 0)) || return 0
    local owner
    if [[ -d $PG_DATA ]]; then
        owner="$(stat -c %U "$PG_DATA")"
        if [[ $owner != root && $owner != UNKNOWN ]]; then
            printf '%s\n' "$owner"
            return 0
        fi
    fi
    if id -u postgres >/dev/null 2>&1; then
        printf 'postgres\n'
    else
        printf 'nobody\n'
    fi
}

# Runs a command as user $1 (or as ourselves when $1 is empty), from / so that a working folder
# the user may not enter does not matter.
as_user() {
    local user="$1"
    shift
    if [[ -z $user ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$user" -- "$@")
    else
        (cd / && setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@")
    fi
}

# True when PostgreSQL runs on the data folder (pg_ctl status), as the right user.
pg_running() {
    [[ -f $PG_DATA/PG_VERSION ]] || return 1
    as_user "$(pg_user)" "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# ---- nginx -------------------------------------------------------------------------------------

# The `user` line of nginx's config (the @USER@ placeholder) for a prefix $1 and a static folder
# $2. Not root: a comment (nginx cannot switch users; the workers run as we do). Root: the
# workers drop to www-data (Debian's nginx user; else nobody), which must be able to reach the
# prefix (the master creates the temp and cache folders in it for them) and read the static
# folder; when a parent folder is closed to it, the workers run as root, with a warning.
nginx_user_line() {
    local prefix="$1" static="$2" user
    if ((EUID != 0)); then
        printf '# not run as root: the workers run as %s, like the master\n' "$(id -un)"
        return 0
    fi
    user=www-data
    id -u "$user" >/dev/null 2>&1 || user=nobody
    if as_user "$user" test -x "$prefix" && as_user "$user" test -r "$static" &&
        as_user "$user" test -x "$static"; then
        printf 'user %s %s;\n' "$user" "$(id -gn "$user")"
    else
        warn "nginx: user $user cannot reach $prefix or read $static (a parent folder is closed to it): its workers run as root"
        printf 'user root root;\n'
    fi
}

# Renders the nginx template $1 into $2 (written whole, then moved in place). $3: the prefix,
# $4: the port, $5: the static folder, $6: the @USER@ line, then one HOST:PORT per edge. The
# trusted blocks come from NGINX_TRUSTED_CDN. The placeholders are documented at the top of the
# template; tests/src/nginx_server.rs renders it the same way.
render_nginx_conf() {
    local template="$1" dst="$2" prefix="$3" port="$4" static="$5" user_line="$6"
    shift 6
    local path edge block upstreams="" trusted="" text
    # HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one (`]` first in a bracket).
    local host_port='^[][A-Za-z0-9.:-]+:[0-9]+$'
    for path in "$prefix" "$static"; do
        [[ $path == /* && $path != *[[:space:]\;\{\}\$\"\'\\#]* ]] ||
            die "nginx: $path must be an absolute path without spaces, quotes or ;{}\$\\#"
    done
    (($# > 0)) || die "nginx: no edge to send requests to"
    for edge in "$@"; do
        [[ $edge =~ $host_port ]] || die "nginx: edge $edge is not HOST:PORT"
        upstreams+="server $edge; "
    done
    for block in "${TRUSTED_CDN_BLOCKS[@]}"; do
        trusted+="set_real_ip_from $block; "
    done
    text="$(<"$template")" || die "nginx: cannot read $template"
    # Quoted replacements: taken literally (bash 5.2 would otherwise expand & in them).
    text="${text//@PREFIX@/"$prefix"}"
    text="${text//@NGINX_PORT@/"$port"}"
    text="${text//@STATIC_ROOT@/"$static"}"
    text="${text//@EDGE_UPSTREAMS@/"$upstreams"}"
    text="${text//@TRUSTED_CDN@/"$trusted"}"
    text="${text//@USER@/"$user_line"}"
    if [[ $text =~ @[A-Z_]+@ ]]; then
        die "nginx: $template has a placeholder this script does not fill: ${BASH_REMATCH[0]}"
    fi
    printf '%s\n' "$text" >"$dst.tmp"
    mv "$dst.tmp" "$dst"
}

# Runs `nginx -t` on config $2 with prefix $1; on failure prints its output and returns non-zero.
nginx_test_config() {
    local out
    if ! out="$(nginx -t -q -p "$1/" -c "$2" 2>&1)"; then
        printf '%s\n' "$out" >&2
        return 1
    fi
}
