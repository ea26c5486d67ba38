#!/usr/bin/env bash
# Make a local debian:bookworm-slim equivalent with debootstrap and import it, so the image
# builds with no image registry. Needs root and Debian's package mirror (MIRROR overrides it).
# Usage: deploy/image/base.sh IMAGE_NAME
set -euo pipefail
image=${1:?usage: base.sh IMAGE_NAME}
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
work=${IMAGE_WORKDIR:-/var/tmp/collector-image}

if podman image exists "$image"; then
    echo "base: $image already present (podman rmi $image to rebuild it)"
    exit 0
fi
rootfs=$work/rootfs
if [[ ! -x $rootfs/usr/bin/apt-get ]]; then
    rm -rf "$rootfs"
    mkdir -p "$work"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
fi

# What the official slim image does (debuerreotype's slimify): no docs, man pages or
# translations now or from later installs, and apt keeps no caches in layers.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# The build's apt-get uses the same mirror, with updates and security fixes as the slim image.
cat > "$rootfs/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
LIST

tar --numeric-owner -C "$rootfs" -c . |
    podman import --change 'CMD ["bash"]' - "$image"
echo "base: imported $image ($(du -sh "$rootfs" | cut -f1) unpacked)"
