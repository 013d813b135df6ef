# shellcheck shell=bash
# Shared functions of the deploy scripts. Sourced, never run.
#
# The caller sets SCRIPT (its name for messages, e.g. "deploy/up") and ROOT (the repository root,
# resolved from the script's own location), then sources this file. Starting and stopping the stack
# is the launcher's job (`stack` below); the shell installs what is missing and builds.

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

# STATE_DIR (default <repo>/state), absolute, and where cargo puts the binaries. The launcher
# (servers/src/bin/stack/) reads and checks every other setting itself.
load_settings() {
    STATE_DIR="${STATE_DIR:-$ROOT/state}"
    [[ $STATE_DIR == /* ]] || STATE_DIR="$CALLER_DIR/$STATE_DIR"
    STATE_DIR="$(realpath -m -s -- "$STATE_DIR")"
    [[ -n $STATE_DIR && $STATE_DIR != "$CALLER_DIR" ]] || die "STATE_DIR must name a folder of its own"
    # Cargo runs from the root, so a relative CARGO_TARGET_DIR is from there.
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
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
# nginx and curl (and, with --browser, chromium and chromedriver for the browser tests and Node.js
# with npm for the page's unit tests and the login test's OpenID provider): with apt-get when root,
# otherwise says what to run and exits non-zero.
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
    if $browser && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
        missing+=("node/npm")
        packages+=("nodejs" "npm")
    fi
    if ((${#packages[@]} == 0)); then
        say "prerequisites present: redis-server, PostgreSQL ($(find_pg_bin)), nginx, curl$($browser && printf ', chromium, chromedriver, node, npm')"
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
        command -v npm >/dev/null 2>&1 || die "npm still missing after installing nodejs npm"
    fi
    say "installed ${packages[*]}"
}

# ---- dtm (the real coordinator, issue 15) ---------------------------------------------------------

# The pinned dtm release, and the folder its two binaries are installed into: `dtm` (the server)
# and `dtm-bench` (its flash-sale bench server, the package helper/bench of the same module).
# Outside the repository, so a `cargo clean` or a new worktree does not build them again.
DTM_VERSION="v1.19.0"
DTM_MODULE="github.com/dtm-labs/dtm"
DTM_DIR="${DTM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-sale/dtm-$DTM_VERSION}"

# Whether Go 1.22 or newer (what dtm's go.mod asks for) is on the PATH.
have_go() {
    local version
    command -v go >/dev/null 2>&1 || return 1
    version="$(go env GOVERSION 2>/dev/null)" || return 1
    version="${version#go}"
    [[ $(printf '%s\n' 1.22 "$version" | sort -V | head -1) == 1.22 ]]
}

# Installs dtm and dtm-bench at $DTM_VERSION into $DTM_DIR when they are missing, and exports
# DTM_BIN and DTM_BENCH_BIN (the tests and the launcher find them there). Without Go it says so
# and returns 1: the caller decides whether that is fatal.
ensure_dtm() {
    export DTM_BIN="$DTM_DIR/dtm" DTM_BENCH_BIN="$DTM_DIR/dtm-bench"
    if [[ -x $DTM_BIN && -x $DTM_BENCH_BIN ]]; then
        say "dtm $DTM_VERSION present in $(show_path "$DTM_DIR")"
        return 0
    fi
    if ! have_go; then
        warn "Go 1.22 or newer is missing: dtm $DTM_VERSION cannot be built (install Go from https://go.dev/dl/ or the golang package)"
        return 1
    fi
    header "installing dtm $DTM_VERSION into $(show_path "$DTM_DIR")"
    mkdir -p "$DTM_DIR"
    local gobin
    gobin="$(mktemp -d "$DTM_DIR/.gobin.XXXXXX")"
    # `go install module@version` first. Where the module proxy refuses the version list
    # (`@v/list`, asked for the deprecation check) but serves the pinned version itself, it fails:
    # then the module is downloaded by exact version and built from the module cache (its
    # dependencies by exact version from its go.sum).
    if GOBIN="$gobin" go install "$DTM_MODULE@$DTM_VERSION" &&
        GOBIN="$gobin" go install "$DTM_MODULE/helper/bench@$DTM_VERSION"; then
        mv "$gobin/bench" "$gobin/dtm-bench"
    else
        warn "go install $DTM_MODULE@$DTM_VERSION failed; building from the downloaded module instead"
        local source
        source="$(go mod download -json "$DTM_MODULE@$DTM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        [[ -n $source && -d $source ]] || die "go mod download $DTM_MODULE@$DTM_VERSION failed"
        (cd "$source" && go build -o "$gobin/dtm" . && go build -o "$gobin/dtm-bench" ./helper/bench) ||
            die "building dtm $DTM_VERSION from $source failed"
    fi
    mv "$gobin/dtm" "$DTM_BIN"
    mv "$gobin/dtm-bench" "$DTM_BENCH_BIN"
    rmdir "$gobin"
    say "installed $(show_path "$DTM_BIN") and $(show_path "$DTM_BENCH_BIN")"
}

ensure_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust (https://rustup.rs), then run ./$SCRIPT again"
}

# ---- the launcher ------------------------------------------------------------------------------

# Builds the launcher (servers/src/bin/stack/, in release: a small crate of its own) and runs it
# with the arguments given, from where the user ran the script (a relative STATE_DIR is from
# there). Every setting reaches it through the environment.
stack() {
    (cd "$ROOT" && cargo build --release -q -p flash-servers --bin stack) ||
        die "cargo build --release -p flash-servers --bin stack failed"
    (cd "$CALLER_DIR" && "$TARGET_DIR/release/stack" --root "$ROOT" "$@")
}
