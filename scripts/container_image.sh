#!/usr/bin/env bash
# Build the scfan image with Podman on this machine, once per content hash; print its tag (last line of stdout).
#
#   scripts/container_image.sh [cpu|cuda]      (default cpu)
#   eval "$(scripts/container_image.sh env)"   the CONTAINERS_CONF that Nextflow's podman calls must inherit
#
# containers/Dockerfile is what users build (FROM the public Python image). This script is the test set-up around
# it for machines like ours, and everything machine-specific stays here, out of the image definitions:
#   - no image registry is reachable, so the base image is made locally: debootstrap (Debian bookworm minbase with
#     python3 + python3-venv) from the mirror the host's apt uses, imported with `podman import`;
#   - the registries are reached through a TLS-inspecting proxy, so the base carries the host's extra CA
#     certificates (/usr/local/share/ca-certificates) and PIP_CERT points at the bundle (without them pip in the
#     build fails with a misleading "No matching distribution found");
#   - Debian's podman here needs runc (crun fails in cgroups hybrid mode), the cgroupfs manager, file events and
#     explicit ulimits (no CAP_SYS_RESOURCE): written to a containers.conf that podman reads via CONTAINERS_CONF.
# The image tag holds a hash of everything the build copies (lock file, pyproject, python/, assets/, Dockerfile, the
# numba warm-up), so a changed source gives a new tag; podman's layer cache keeps the pip layer while requirements.lock is
# unchanged (the build stage is tagged by the lock file's hash), so only the package layers are rebuilt. Older
# tags are removed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${1:-cpu}"
state="${SCFAN_CONTAINER_STATE:-$HOME/.cache/scfan-containers}"
mkdir -p "$state"
conf="$state/containers.conf"

log() { echo "container_image: $*" >&2; }
die() { log "$*"; exit 1; }

cat > "$conf.tmp" <<'EOF'
# Written by scripts/container_image.sh: podman settings for this kind of machine (see that script).
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$conf.tmp" "$conf"
export CONTAINERS_CONF="$conf"

if [[ "$target" == env ]]; then
    echo "export CONTAINERS_CONF=$conf"
    exit 0
fi
[[ "$target" == cpu || "$target" == cuda ]] || die "unknown target '$target' (expected cpu or cuda)"

need=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if (( ${#need[@]} )); then
    [[ $EUID -eq 0 ]] || die "missing ${need[*]}; install them (apt-get install podman runc debootstrap) or run as root"
    log "installing ${need[*]} from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc debootstrap uidmap \
        >"$state/apt.log" 2>&1 || { apt-get update -q >>"$state/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc debootstrap uidmap \
        >>"$state/apt.log" 2>&1; } || die "apt-get install failed (see $state/apt.log)"
fi

# ---------------------------------------------------------------------------------------------- local base image
mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
[[ -n "$mirror" ]] || mirror="$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
mirror="${mirror:-http://deb.debian.org/debian}"
certs=(/usr/local/share/ca-certificates/*.crt)
[[ -e "${certs[0]}" ]] || certs=()
base_key="$( { echo "$mirror"; cat "${certs[@]}" /dev/null; } | sha256sum | cut -c1-12)"
base="localhost/scfan-base:bookworm-$base_key"
if ! podman image exists "$base"; then
    rootfs="$(mktemp -d "$state/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap bookworm from $mirror (about half a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
        >"$state/debootstrap.log" 2>&1 || die "debootstrap failed (see $state/debootstrap.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    if (( ${#certs[@]} )); then
        cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the base"
    fi
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    log "base image $base"
fi

# --------------------------------------------------------------------------------------------- the scfan image
key="$(find requirements.lock pyproject.toml README.md containers/Dockerfile containers/warm_numba.py .dockerignore python assets -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum \
        | sha256sum | cut -c1-12)"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)"
tag="localhost/scfan-nf/scfan:${version}-${target}-${key}"
if podman image exists "$tag"; then
    log "up to date: $tag"
else
    log "building $tag (target $target, base $base)"
    start=$SECONDS
    # the build stage (the locked venv) gets its own tag, so pruning never drops it and a change of the sources
    # reuses it: only the package layers are rebuilt
    lock_key="$( { cat requirements.lock containers/Dockerfile; echo "$base"; } | sha256sum | cut -c1-12)"
    build_tag="localhost/scfan-nf/scfan-build:$lock_key"
    for stage in build "$target"; do
        t="$tag"; [[ "$stage" == build ]] && t="$build_tag"
        podman build --network=host --layers -f containers/Dockerfile --target "$stage" \
            --build-arg BASE_IMAGE="$base" -t "$t" . >"$state/build-$stage.log" 2>&1 \
            || die "podman build --target $stage failed (last lines of $state/build-$stage.log):
$(tail -20 "$state/build-$stage.log")"
    done
    log "built $tag in $(( SECONDS - start )) s"
    for old in $(podman images --noheading | awk '{print $1":"$2}' | grep -E "^localhost/scfan-nf/scfan(-build)?:" \
                 | grep -v -x -e "$tag" -e "$build_tag" | grep -E -e "-${target}-|scfan-build:" || true); do
        podman rmi "$old" >/dev/null 2>&1 || true
    done
    podman image prune -f >/dev/null 2>&1 || true
fi
echo "$tag"
