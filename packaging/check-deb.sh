#!/usr/bin/env bash
# Installs, uses, upgrades, removes and purges the built package on this machine, as CI does:
#
#   packaging/check-deb.sh [target/debian/backupd_VERSION_ARCH.deb]
#
# Root only, and only where backupd is not installed and /var/lib/backupd does not exist (the
# purge at the end would delete a real installation's state). Fails on any of:
#  - lintian errors or warnings (info tags are shown; overrides carry their reasons);
#  - after `dpkg -i`: a missing group, directory, conffile, man page (`man -w`) or completion;
#    `backupd --check-config` rejecting the packaged config; the socket not enabled or the service
#    enabled; `systemd-analyze verify` of the installed units saying anything (man pages checked);
#    `systemd-analyze security` exposure above 2.5;
#  - the installed daemon, run in the foreground, not answering backupctl, creating its default
#    repository and backing up into it and into a repository outside /var/lib/backupd;
#  - an upgrade (reinstall) losing an admin's change to config.toml;
#  - `dpkg -r` leaving the binaries or removing the config; `dpkg -P` leaving any file of the
#    package, /etc/backupd, /run/backupd, the state database or the unit links, touching the
#    repository outside /var/lib/backupd, or deleting the default repository or the keys (they
#    hold backups; purge keeps them and says so). A second install and purge, with no repository,
#    must leave no /var/lib/backupd at all.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DEB=${1:-$(ls -t target/debian/backupd_*.deb 2>/dev/null | head -n 1 || true)}
[[ -n $DEB && -f $DEB ]] || { echo "check-deb: no package; run packaging/build-deb.sh" >&2; exit 1; }
DEB=$(realpath "$DEB")
[[ $(id -u) -eq 0 ]] || { echo "check-deb: must run as root (dpkg -i)" >&2; exit 1; }
status=$(dpkg-query -W -f='${db:Status-Status}' backupd 2>/dev/null || echo not-installed)
if [[ $status != not-installed ]]; then
    echo "check-deb: backupd is known to dpkg here ($status); refusing to purge it" >&2
    exit 1
fi
for path in /var/lib/backupd /etc/backupd /usr/bin/backupd /usr/bin/backupctl \
    /usr/lib/systemd/system/backupd.service; do
    if [[ -e $path || -L $path ]]; then
        echo "check-deb: $path exists (an installation by hand?); refusing to install over it" >&2
        exit 1
    fi
done

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok:   $*"; }
check() { # description command...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi
}

WORK=$(mktemp -d /tmp/check-deb.XXXXXX)
DAEMON_PID=
cleanup() {
    if [[ -n $DAEMON_PID ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    dpkg -P backupd >/dev/null 2>&1 || true
    rm -rf /var/lib/backupd "$WORK"
}
trap cleanup EXIT

for tool in lintian man systemd-analyze; do
    command -v "$tool" >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian man-db \
            systemd
        break
    }
done

echo "== lintian"
# --fail-on: errors and warnings fail; the info tags it prints are for reading.
lintian_rc=0
lintian --fail-on error,warning --pedantic "$DEB" >"$WORK/lintian.out" 2>&1 || lintian_rc=$?
grep -v 'running with root' "$WORK/lintian.out" || true
if [[ $lintian_rc -eq 0 ]]; then
    ok "lintian: no errors or warnings"
else
    fail "lintian reported errors or warnings (exit $lintian_rc)"
fi

echo "== install"
dpkg -i "$DEB"
check "group backupd exists" getent group backupd
check "/etc/backupd/config.toml is root 0600" test "$(stat -c '%a %U' /etc/backupd/config.toml)" = "600 root"
state_mode() { stat -c '%a %U %G' "$1" 2>/dev/null || echo missing; }
[[ $(state_mode /var/lib/backupd) == "700 root root" ]] && ok "/var/lib/backupd 0700 root" \
    || fail "/var/lib/backupd is $(state_mode /var/lib/backupd)"
[[ $(state_mode /run/backupd) == "750 root backupd" ]] && ok "/run/backupd 0750 root:backupd" \
    || fail "/run/backupd is $(state_mode /run/backupd)"
dpkg-query -W -f='${Conffiles}\n' backupd | grep -q '^ /etc/backupd/config.toml ' \
    && ok "/etc/backupd/config.toml is a conffile" || fail "/etc/backupd/config.toml is not a conffile"
check "backupd --check-config accepts the packaged config" /usr/bin/backupd --check-config
for page in backupd backupctl backupd.toml backupctl-repo-init backupctl-restore; do
    check "man -w $page" man -w "$page"
done
check "backupctl bash completion parses" bash -n /usr/share/bash-completion/completions/backupctl
check "backupd bash completion parses" bash -n /usr/share/bash-completion/completions/backupd
check "zsh completion installed" test -s /usr/share/zsh/vendor-completions/_backupctl
check "fish completion installed" test -s /usr/share/fish/vendor_completions.d/backupctl.fish
check "backupd.socket enabled" test -L /etc/systemd/system/sockets.target.wants/backupd.socket
check "backupd.service not enabled" test ! -e /etc/systemd/system/multi-user.target.wants/backupd.service

echo "== installed units"
verify_rc=0
systemd-analyze verify /usr/lib/systemd/system/backupd.service /usr/lib/systemd/system/backupd.socket \
    >"$WORK/verify.out" 2>"$WORK/verify.err" || verify_rc=$?
cat "$WORK/verify.out" "$WORK/verify.err"
if [[ $verify_rc -ne 0 ]] || grep -q 'backupd' "$WORK/verify.err"; then
    fail "systemd-analyze verify of the installed units (with their man pages) is not clean"
else
    ok "systemd-analyze verify: clean, man pages found"
fi
exposure=$(systemd-analyze security --offline=true --no-pager /usr/lib/systemd/system/backupd.service \
    2>/dev/null | sed -n 's/.*Overall exposure level for backupd\.service: \([0-9.]*\).*/\1/p')
if [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e + 0 <= 2.5) }'; then
    ok "exposure $exposure <= 2.5"
else
    fail "exposure '${exposure:-?}' > 2.5"
fi

echo "== the installed daemon"
mkdir -p "$WORK/data/sub" "$WORK/outside"
for i in 1 2 3; do head -c 100000 /dev/urandom >"$WORK/data/sub/file$i"; done
echo "outside passphrase" >"$WORK/outside.pass"
chmod 0600 "$WORK/outside.pass"
/usr/bin/backupd >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do
    /usr/bin/backupctl system health >/dev/null 2>&1 && break
    sleep 0.1
done
check "backupctl talks to the installed daemon" /usr/bin/backupctl system health
check "repo init outside /var/lib/backupd" /usr/bin/backupctl repo init --name outside \
    --path "$WORK/outside/repo" --password-file "$WORK/outside.pass"
check "backup into the default repository" /usr/bin/backupctl backup "$WORK/data"
check "backup into the outside repository" /usr/bin/backupctl backup --repo outside "$WORK/data"
check "default repository in /var/lib/backupd" test -f /var/lib/backupd/repository/config
# The installed bash script, as bash runs it on TAB after `backupctl repo info `: the names come
# from the installed daemon.
offered=$(PATH=/usr/bin:/bin bash -c 'source /usr/share/bash-completion/completions/backupctl
    COMP_WORDS=(backupctl repo info ""); COMP_CWORD=3
    _clap_complete_backupctl backupctl "" info; printf "%s\n" "${COMPREPLY[@]}"' 2>&1 || true)
if grep -qx outside <<<"$offered" && grep -qx default <<<"$offered"; then
    ok "bash completion offers the daemon's repositories"
else
    fail "bash completion offered '$offered', not the repositories default and outside"
fi
kill "$DAEMON_PID" 2>/dev/null || true
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
(cd "$WORK/outside" && find . -type f -print0 | sort -z | xargs -0r sha256sum) >"$WORK/outside.before"

echo "== upgrade"
sed -i 's/^#workers = 2$/workers = 1/' /etc/backupd/config.toml
check "the admin's change is valid" /usr/bin/backupd --check-config
dpkg -i "$DEB"
grep -qx 'workers = 1' /etc/backupd/config.toml && ok "upgrade kept the admin's config change" \
    || fail "upgrade lost the admin's config change"

echo "== remove"
dpkg -r backupd
check "binaries removed" test ! -e /usr/bin/backupd -a ! -L /usr/bin/backupd -a ! -e /usr/bin/backupctl
check "config kept after remove" test -f /etc/backupd/config.toml
check "state kept after remove" test -d /var/lib/backupd/repository

echo "== purge"
dpkg -P backupd 2>&1 | tee "$WORK/purge.out"
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' >"$WORK/files"
left=$(while read -r f; do if [[ -e $f || -L $f ]]; then echo "$f"; fi; done <"$WORK/files")
[[ -z $left ]] && ok "no file of the package is left" || fail "left after purge: $left"
for d in /etc/backupd /run/backupd /usr/share/doc/backupd /var/lib/backupd/state.sled; do
    check "$d removed" test ! -e "$d"
done
links=$(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked -name '*backupd*' 2>/dev/null || true)
[[ -z $links ]] && ok "no unit links left" || fail "unit links left: $links"
check "default repository kept" test -f /var/lib/backupd/repository/config
check "repository keys kept" test -d /var/lib/backupd/keys
grep -q 'purge kept' "$WORK/purge.out" && ok "purge says what it kept" || fail "purge kept data silently"
(cd "$WORK/outside" && find . -type f -print0 | sort -z | xargs -0r sha256sum) >"$WORK/outside.after"
cmp -s "$WORK/outside.before" "$WORK/outside.after" && ok "repository outside untouched" \
    || fail "purge changed the repository outside /var/lib/backupd"
other=$(ls -A /var/lib/backupd | grep -vx 'repository\|keys' || true)
check "outside repository still has data" test -s "$WORK/outside.after"
[[ -z $other ]] && ok "only the repository and keys remain" || fail "also left in state: $other"
rm -rf /var/lib/backupd

echo "== install and purge with no repository"
dpkg -i "$DEB" >/dev/null
dpkg -P backupd >/dev/null
check "no /var/lib/backupd after a purge with nothing to keep" test ! -e /var/lib/backupd
check "group backupd stays (Debian policy: system groups are not removed)" getent group backupd

echo "== purge rules on scratch roots (DPKG_ROOT)"
# The package's postrm, run as dpkg --root runs it: only the scratch root may change.
purge_in() { # root
    DPKG_ROOT=$1 sh "$REPO/packaging/debian/postrm" purge >"$WORK/scratch-purge.out" 2>&1
}
S=$WORK/scratch1/var/lib/backupd
mkdir -p "$S/state.sled" "$S/state.sled.corrupt-1" "$S/audit" "$S/drill/x" "$S/restore" \
    "$S/repos/a/keys" "$S/repos/a/data" "$S/keys" "$WORK/scratch1/etc/backupd"
touch "$S/audit.key" "$S/repos/a/config" "$S/notes.txt" "$S/state.sled/db"
purge_in "$WORK/scratch1"
check "state database, audit log and scratch purged" \
    test ! -e "$S/state.sled" -a ! -e "$S/state.sled.corrupt-1" -a ! -e "$S/audit" \
    -a ! -e "$S/audit.key" -a ! -e "$S/drill"
check "a nested repository and an unknown file kept" test -f "$S/repos/a/config" -a -f "$S/notes.txt"
check "empty keys/ and restore/ removed" test ! -e "$S/keys" -a ! -e "$S/restore"
check "the kept entries are listed" grep -q "$S/notes.txt" "$WORK/scratch-purge.out"
check "empty /etc/backupd of the root removed" test ! -e "$WORK/scratch1/etc/backupd"
mkdir -p "$WORK/scratch2/var/lib" "$WORK/elsewhere/state.sled"
ln -s "$WORK/elsewhere" "$WORK/scratch2/var/lib/backupd"
purge_in "$WORK/scratch2"
check "a symlinked /var/lib/backupd is left alone" test -d "$WORK/elsewhere/state.sled"
mkdir -p "$WORK/scratch3/var/lib/backupd/state.sled" "$WORK/scratch3/var/lib/backupd/restore"
purge_in "$WORK/scratch3"
check "state with nothing to keep goes entirely" test ! -e "$WORK/scratch3/var/lib/backupd"
check "the host was not touched by a scratch purge" test ! -e /var/lib/backupd

echo
if [[ $failures -ne 0 ]]; then
    echo "check-deb: $failures check(s) failed" >&2
    exit 1
fi
echo "check-deb: all checks passed ($(basename "$DEB"), exposure $exposure)"
