#!/usr/bin/env bash
# Verify backupd's systemd integration files.
#
#   .ci/verify-units.sh PATH-TO-BUILT-BACKUPD        (e.g. target/debug/backupd)
#
# Runs on a clean Debian 12 machine/container as root, where /usr/bin/backupd
# usually does not exist. Needs: systemd (systemd-analyze, systemd-sysusers,
# systemd-tmpfiles), procps (/bin/kill, used by ExecReload=), util-linux
# (unshare, mount). systemd does not need to be running.
#
#   apt-get install -y --no-install-recommends systemd procps
#
# Checks, each of which fails the script:
#  1. `systemd-analyze verify` of the real, unmodified systemd/backupd.service and
#     systemd/backupd.socket, and `systemd-analyze --user verify` of
#     systemd/user/backupd.service (with a scratch XDG_RUNTIME_DIR, which the
#     user manager needs even offline): non-zero exit, or anything on stderr that mentions
#     our units. verify insists that ExecStart=/usr/bin/backupd exists and is
#     executable, so it runs in a private mount namespace in which an overlay on
#     /usr/bin makes the built binary appear as /usr/bin/backupd; the host's
#     /usr/bin is never touched. If the environment cannot mount (container
#     without CAP_SYS_ADMIN), it falls back to a temporary copy of the units in
#     which only the path /usr/bin/backupd is replaced by the built binary, and
#     proves with diff that nothing else differs.
#     --man=no: the units name backupd(8) and backupd.toml(5), which only the
#     package installs; packaging/check-deb.sh verifies the installed units with
#     their man pages.
#  2. `systemd-analyze security --offline=true`: "Overall exposure level" must be
#     <= 2.5.
#  3. sysusers.d / tmpfiles.d entries applied to a scratch root (--root=): they
#     must parse without messages and produce the documented owners and modes.
#  4. Cross-file consistency (socket path, group name), ProtectHome=read-only, the
#     restore area /var/lib/backupd/restore writable under the unit, and in both
#     services ExecReload= checking the config ExecStart= runs with (the same
#     --config on both, or none: then both read BACKUPD_CONFIG or the default).
set -euo pipefail

MAX_EXPOSURE=2.5

die() { echo "verify-units: $*" >&2; exit 1; }
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok:   $*"; }

[[ $# -eq 1 ]] || die "usage: $0 PATH-TO-BUILT-BACKUPD"
[[ -f $1 && -x $1 ]] || die "$1: not an executable file"
[[ $(id -u) -eq 0 ]] || die "must run as root (mount namespace, sysusers/tmpfiles --root)"
for tool in systemd-analyze systemd-sysusers systemd-tmpfiles unshare mount realpath cmp; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x /bin/kill ]] || die "/bin/kill missing (ExecReload= uses it; apt-get install procps)"

BIN=$(realpath "$1")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNITS=$REPO/systemd
SERVICE=$UNITS/backupd.service
SOCKET=$UNITS/backupd.socket
SYSUSERS=$UNITS/backupd.sysusers
TMPFILES=$UNITS/backupd.tmpfiles
USER_SERVICE=$UNITS/user/backupd.service
for f in "$SERVICE" "$SOCKET" "$SYSUSERS" "$TMPFILES" "$USER_SERVICE"; do
    [[ -f $f ]] || die "missing $f"
done

WORK=$(mktemp -d /tmp/verify-units.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Print FILE with every literal occurrence of FROM replaced by TO.
subst() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        printf '%s\n' "${line//"$2"/"$3"}"
    done <"$1"
}

# stderr lines that mention our units make the check fail.
mentions_our_units() { grep -E 'backupd\.(service|socket)|backupd\.sysusers|backupd\.tmpfiles' "$1"; }

# --- 1. systemd-analyze verify -------------------------------------------------
echo "== systemd-analyze verify"
verify_rc=0
# Private mount namespace: tmpfs for overlay upper/work dirs, overlay on /usr/bin,
# an empty /usr/bin/backupd in the overlay with the built binary bind-mounted on
# it. The marker file tells "the namespace was set up" apart from "verify failed".
mkdir -m 0700 "$WORK/xdg"
unshare --mount --propagation private -- env WORK="$WORK" BIN="$BIN" SERVICE="$SERVICE" SOCKET="$SOCKET" \
    USER_SERVICE="$USER_SERVICE" \
    bash -euo pipefail -c '
        mkdir "$WORK/ns"
        mount -t tmpfs -o mode=0700 verify-units "$WORK/ns"
        mkdir "$WORK/ns/upper" "$WORK/ns/work"
        mount -t overlay -o "lowerdir=/usr/bin,upperdir=$WORK/ns/upper,workdir=$WORK/ns/work" verify-units /usr/bin
        : > /usr/bin/backupd
        mount --bind "$BIN" /usr/bin/backupd
        touch "$WORK/namespace-ready"
        rc=0
        systemd-analyze verify --man=no "$SERVICE" "$SOCKET" || rc=$?
        XDG_RUNTIME_DIR="$WORK/xdg" systemd-analyze --user verify --man=no "$USER_SERVICE" || rc=$?
        exit $rc
    ' >"$WORK/verify.out" 2>"$WORK/verify.err" || verify_rc=$?

if [[ -e $WORK/namespace-ready ]]; then
    echo "(method: real unit files, built binary overlaid on /usr/bin/backupd in a private mount namespace)"
else
    echo "(method: mount namespace unavailable; verifying a copy with only /usr/bin/backupd replaced)"
    sed 's/^/  namespace setup: /' "$WORK/verify.err" >&2 || true
    mkdir -p "$WORK/units/user"
    for u in backupd.service backupd.socket user/backupd.service; do
        subst "$UNITS/$u" /usr/bin/backupd "$BIN" >"$WORK/units/$u"
        # Prove that the copy differs from the real file in the binary path only.
        subst "$WORK/units/$u" "$BIN" /usr/bin/backupd | cmp -s - "$UNITS/$u" \
            || die "internal: copy of $u differs from the real file beyond the binary path"
    done
    verify_rc=0
    systemd-analyze verify --man=no "$WORK/units/backupd.service" "$WORK/units/backupd.socket" \
        >"$WORK/verify.out" 2>"$WORK/verify.err" || verify_rc=$?
    XDG_RUNTIME_DIR="$WORK/xdg" systemd-analyze --user verify --man=no "$WORK/units/user/backupd.service" \
        >>"$WORK/verify.out" 2>>"$WORK/verify.err" || verify_rc=$?
fi
cat "$WORK/verify.out"
if [[ -s $WORK/verify.err ]]; then
    echo "--- verify stderr:"
    cat "$WORK/verify.err"
fi
if [[ $verify_rc -ne 0 ]]; then
    fail "systemd-analyze verify exited $verify_rc"
elif mentions_our_units "$WORK/verify.err" >/dev/null; then
    fail "systemd-analyze verify printed messages about our units"
else
    ok "systemd-analyze verify: clean"
fi

# --- 2. security exposure ------------------------------------------------------
echo "== systemd-analyze security --offline=true"
sec_rc=0
systemd-analyze security --offline=true --no-pager "$SERVICE" \
    >"$WORK/security.out" 2>"$WORK/security.err" || sec_rc=$?
grep -v '✓' "$WORK/security.out" || true   # the remaining exposure items
if [[ -s $WORK/security.err ]]; then
    echo "--- security stderr:"
    cat "$WORK/security.err"
fi
exposure=$(sed -n 's/.*Overall exposure level for backupd\.service: \([0-9][0-9.]*\).*/\1/p' "$WORK/security.out")
if [[ $sec_rc -ne 0 ]]; then
    fail "systemd-analyze security exited $sec_rc"
elif [[ -z $exposure ]]; then
    fail "could not find 'Overall exposure level' in systemd-analyze security output"
elif ! awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e + 0 <= m + 0) }'; then
    fail "overall exposure $exposure > $MAX_EXPOSURE"
else
    ok "overall exposure $exposure <= $MAX_EXPOSURE"
fi
if mentions_our_units "$WORK/security.err" >/dev/null; then
    fail "systemd-analyze security printed messages about our unit"
fi

# --- 3. sysusers.d / tmpfiles.d ----------------------------------------------
echo "== sysusers.d / tmpfiles.d (scratch root)"
ROOT=$WORK/root
mkdir -p "$ROOT/etc"
if ! systemd-sysusers --root="$ROOT" "$SYSUSERS" >"$WORK/sysusers.out" 2>&1; then
    cat "$WORK/sysusers.out"; fail "systemd-sysusers failed"
fi
if grep -v "^Creating group 'backupd' with GID [0-9]*\.$" "$WORK/sysusers.out"; then
    fail "systemd-sysusers printed unexpected messages"
fi
gid=$(awk -F: '$1 == "backupd" { print $3 }' "$ROOT/etc/group" 2>/dev/null || true)
if [[ -z $gid ]]; then
    fail "sysusers did not create group backupd"
else
    ok "sysusers: group backupd (gid $gid in scratch root)"
fi
if ! systemd-tmpfiles --root="$ROOT" --create "$TMPFILES" >"$WORK/tmpfiles.out" 2>&1 \
    || [[ -s $WORK/tmpfiles.out ]]; then
    cat "$WORK/tmpfiles.out"; fail "systemd-tmpfiles --create failed or printed messages"
fi
check_dir() { # path mode uid gid
    local got
    got=$(stat -c '%a %u %g' "$ROOT$1" 2>/dev/null || echo missing)
    if [[ $got == "$2 $3 $4" ]]; then ok "tmpfiles: $1 $got"; else fail "tmpfiles: $1 is '$got', want '$2 $3 $4'"; fi
}
check_dir /var/lib/backupd 700 0 0
check_dir /var/lib/backupd/restore 700 0 0
check_dir /run/backupd 750 0 "${gid:-?}"

# --- 4. consistency between the files ----------------------------------------
echo "== consistency"
unit_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
listen=$(unit_value "$SOCKET" ListenStream)
sock_group=$(unit_value "$SOCKET" SocketGroup)
exec_start=$(unit_value "$SERVICE" ExecStart)
[[ $exec_start == *"--socket $listen"* ]] \
    && ok "ExecStart --socket matches ListenStream=$listen" \
    || fail "ExecStart ($exec_start) does not pass --socket $listen"
[[ $sock_group == backupd ]] && grep -Eq '^g[[:space:]]+backupd[[:space:]]' "$SYSUSERS" \
    && ok "SocketGroup=$sock_group is created by sysusers" \
    || fail "SocketGroup=$sock_group is not the sysusers group backupd"
grep -Eq "^d[[:space:]]+$(dirname "$listen")[[:space:]]+0750[[:space:]]+root[[:space:]]+backupd" "$TMPFILES" \
    && ok "tmpfiles creates $(dirname "$listen") root:backupd 0750" \
    || fail "tmpfiles does not create $(dirname "$listen") root:backupd 0750"
# ProtectHome=yes/tmpfs would hide /home from backups.
[[ $(unit_value "$SERVICE" ProtectHome) == read-only ]] \
    && ok "ProtectHome=read-only" || fail "ProtectHome must be read-only (yes/tmpfs hide /home from backups)"

# The restore area must exist and be writable under ProtectSystem=strict.
state_dirs=" $(unit_value "$SERVICE" StateDirectory) "
rw_paths=" $(unit_value "$SERVICE" ReadWritePaths) "
[[ $state_dirs == *" backupd/restore "* && $rw_paths == *" /var/lib/backupd "* ]] \
    && ok "/var/lib/backupd/restore is created (StateDirectory=) and writable (ReadWritePaths=)" \
    || fail "/var/lib/backupd/restore is not both in StateDirectory= and under ReadWritePaths="
# ExecReload= must check the file ExecStart= runs with, not only the default path.
for unit in "$SERVICE" "$USER_SERVICE"; do
    start_config=$(sed -n 's/^ExecStart=.*\(--config [^ ]*\).*/\1/p' "$unit")
    check=$(grep -E '^ExecReload=.*--check-config' "$unit" || true)
    reload_config=$(sed -n 's/^ExecReload=.*--check-config.*\(--config [^ ]*\).*/\1/p' "$unit")
    if [[ -z $check ]]; then
        fail "$unit: no ExecReload= with --check-config"
    elif [[ $start_config != "$reload_config" ]]; then
        fail "$unit: ExecStart= uses '$start_config' but ExecReload= checks '$reload_config'"
    elif grep -Eq '^Environment=.*BACKUPD_CONFIG=( |$)' "$unit"; then
        fail "$unit: an empty BACKUPD_CONFIG= is an error to backupd; leave it unset"
    else
        ok "$(basename "$(dirname "$unit")")/$(basename "$unit"): ExecReload= checks the config ExecStart= uses"
    fi
done

echo
if [[ $failures -ne 0 ]]; then
    echo "verify-units: $failures check(s) failed" >&2
    exit 1
fi
echo "verify-units: all checks passed (exposure $exposure)"
