#!/usr/bin/env bash
# Builds the Debian package for the host architecture:
#
#   packaging/build-deb.sh            -> target/debian/backupd_VERSION_ARCH.deb
#
# Installs what it needs (dpkg-dev, binutils; as root through apt), builds the release binaries
# and packaging/assets (man pages, completions, config.toml generated from the code), lays out
# the package tree under target/debian/root and packs it with dpkg-deb. No debhelper: the
# maintainer scripts are packaging/debian/{postinst,prerm,postrm}. The version is the workspace's
# and must match packaging/debian/changelog.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v strip >/dev/null || need+=(binutils)
command -v gzip >/dev/null || need+=(gzip)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "build-deb: install ${need[*]} first (needs root)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
ARCH=$(dpkg --print-architecture)
CHANGELOG_VERSION=$(sed -n '1s/^backupd (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$VERSION" = "$CHANGELOG_VERSION" ] || {
    echo "build-deb: Cargo.toml says $VERSION, packaging/debian/changelog $CHANGELOG_VERSION:" \
        "add a changelog entry for $VERSION" >&2
    exit 1
}
# Reproducible: man page dates and file times come from the last commit (or, outside git, the
# changelog's date), not from the clock.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null \
    || date -d "$(sed -n 's/^ -- .*>  //p' packaging/debian/changelog | head -n 1)" +%s)
export SOURCE_DATE_EPOCH

echo "== build (release)"
cargo build --release --locked -p backupd -p backupctl -p backupd-assets --bins

OUT=$REPO/target/debian
ROOT=$OUT/root
rm -rf "$ROOT" "$OUT/assets" "$OUT/shlibs"
mkdir -p "$ROOT/DEBIAN"
target/release/backupd-assets "$OUT/assets"

echo "== layout"
put() { # mode source destination
    install -D -m "$1" "$2" "$ROOT$3"
}
for bin in backupd backupctl; do
    put 0755 "target/release/$bin" "/usr/bin/$bin"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/$bin"
done
put 0644 systemd/backupd.service /usr/lib/systemd/system/backupd.service
put 0644 systemd/backupd.socket /usr/lib/systemd/system/backupd.socket
put 0644 systemd/user/backupd.service /usr/lib/systemd/user/backupd.service
put 0644 systemd/backupd.sysusers /usr/lib/sysusers.d/backupd.conf
put 0644 systemd/backupd.tmpfiles /usr/lib/tmpfiles.d/backupd.conf
# 0600: the admin may add password commands and hooks to it; only the daemon (root) reads it.
put 0600 "$OUT/assets/config.toml" /etc/backupd/config.toml

for page in "$OUT"/assets/man/*.[0-9]; do
    section=${page##*.}
    put 0644 "$page" "/usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$ROOT/usr/share/man/man$section/$(basename "$page")"
done
completions=$OUT/assets/completions
for cmd in backupd backupctl; do
    put 0644 "$completions/$cmd" "/usr/share/bash-completion/completions/$cmd"
    put 0644 "$completions/_$cmd" "/usr/share/zsh/vendor-completions/_$cmd"
    put 0644 "$completions/$cmd.fish" "/usr/share/fish/vendor_completions.d/$cmd.fish"
done

DOC=/usr/share/doc/backupd
put 0644 README.md "$DOC/README.md"
for doc in docs/*.md; do
    put 0644 "$doc" "$DOC/$(basename "$doc")"
done
for schema in docs/json/*.json; do
    put 0644 "$schema" "$DOC/json/$(basename "$schema")"
done
put 0644 packaging/debian/copyright "$DOC/copyright"
put 0644 packaging/debian/changelog "$DOC/changelog"
gzip -9n "$ROOT$DOC/changelog"
put 0644 packaging/debian/lintian-overrides /usr/share/lintian/overrides/backupd

for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$ROOT/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$ROOT/DEBIAN/conffiles"

# Shared-library dependencies of the binaries. dpkg-shlibdeps wants a debian/control to read.
mkdir -p "$OUT/shlibs/debian"
printf 'Source: backupd\n\nPackage: backupd\nArchitecture: any\n' >"$OUT/shlibs/debian/control"
SHLIBS=$(cd "$OUT/shlibs" && dpkg-shlibdeps -O "$ROOT/usr/bin/backupd" "$ROOT/usr/bin/backupctl" \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# Every file but the conffiles (dpkg tracks those itself), in a locale-independent order.
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./|/|' \
    | grep -vxF -f "$REPO/packaging/debian/conffiles" | LC_ALL=C sort | sed 's|^/||' \
    | tr '\n' '\0' | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums"
# Apparent sizes in KiB per file, as dpkg-gencontrol counts them: the same on any file system.
SIZE=$(find "$ROOT" -path "$ROOT/DEBIAN" -prune -o -type f -printf '%s\n' \
    | awk '{ kib += int(($1 + 1023) / 1024) } END { print kib + 0 }')
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@SHLIBS@/$SHLIBS/" \
    packaging/debian/control.in >"$ROOT/DEBIAN/control"

# Every file and directory at a fixed time and mode, so that two builds of a commit are equal.
find "$ROOT" -type d -exec chmod 0755 {} +
find "$ROOT" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

DEB=$OUT/backupd_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "build-deb: $DEB ($(du -h "$DEB" | cut -f1))"
