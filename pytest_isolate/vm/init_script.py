"""The guest's /init and the per-launch script it runs, as text.

``INIT`` is the same for every guest of a kernel and lives in the cached
initramfs. It loads the modules and builds a tmpfs root, then stops at a
checkpoint: it says so on the channel and reads the per-launch payload
(``handover.launch_payload``) from it. The host may snapshot the guest at
that point, because no share is mounted yet (QEMU refuses to migrate a guest
with a mounted 9p share); one code path serves booted and restored guests.
Then it builds a tmpfs /tmp, mounts the host's shares read-only over
virtio-9p (after /tmp, so that a share under /tmp, such as a project in
pytest's ``tmp_path``, lands on the tmpfs instead of being hidden by it),
switches root and hands over to the per-launch script, which
``launch_script`` renders from a ``VMConfig``-like plan. Every value that
comes from the user is shell-quoted here.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

#: Where the initramfs keeps busybox, the modules and the launch script. It is
#: recreated on the new root so the final ``exec`` still finds busybox.
PI = "/pi"

INIT = r"""#!/pi/busybox sh
# pytest-isolate guest init: stage 1, runs from the initramfs.
B=/pi/busybox
fail() { echo "pytest-isolate init: $*" >&2; $B sleep 1; $B poweroff -f; }
$B mount -t devtmpfs dev /dev || fail "cannot mount devtmpfs"
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
for m in $($B cat /pi/modules.order); do
    $B insmod "/pi/modules/$m" || fail "cannot load module $m"
done
$B mount -t tmpfs -o mode=0755 root /newroot || fail "cannot mount the tmpfs root"
port=""
for i in $($B seq 40); do
    for p in /dev/vport*p1; do [ -e "$p" ] && port="$p" && break 2; done
    $B sleep 0.05
done
[ -n "$port" ] || fail "the channel port /dev/vport*p1 did not appear"
# The port stays open on fd 3 until the command inherits it: a virtio port opens only once.
exec 3<>"$port"
# Checkpoint: nothing of the host is mounted yet (a mounted 9p share blocks
# migration), so the host may snapshot the guest here. Everything per launch
# arrives afterwards: a size line, then a cpio archive (launch script, /etc,
# host entropy and clock). The host sends nothing more until the command speaks.
echo "pytest-isolate checkpoint" >&3
read -r size <&3 || fail "the host sent no launch payload"
case "$size" in ''|*[!0-9]*) fail "bad launch payload size: $size" ;; esac
$B head -c "$size" <&3 >/pi/payload.cpio
cd / && $B cpio -i -d -u </pi/payload.cpio 2>/dev/null || fail "cannot unpack the launch payload"
$B rm /pi/payload.cpio
# Before anything else runs: the host's clock, and a CRNG reseeded with host entropy.
/pi/reseed
step=$?
$B rm -f /pi/seed
case $step in
    0) ;;
    4) fail "cannot set the clock (reseed helper)" ;;
    *) fail "cannot reseed the kernel RNG (reseed helper, step $step)" ;;
esac
share() {  # share TAG PATH: the host's PATH, read-only, at the same place
    $B mkdir -p "/newroot$2"
    $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 "$1" "/newroot$2" \
        || fail "cannot mount 9p share $1 at $2"
}
link() { $B mkdir -p "$($B dirname "/newroot$1")"; $B ln -s "$2" "/newroot$1"; }
. /pi/launch.sh
# /tmp first: a share under /tmp (a project in pytest's tmp_path) must land on it, not under it.
$B mkdir -p /newroot/tmp
$B mount -t tmpfs -o mode=1777 tmp /newroot/tmp || fail "cannot mount the tmpfs on /tmp"
mounts
$B mkdir -p /newroot/dev /newroot/proc /newroot/sys /newroot/pi /newroot/etc
$B cp -a /pi/etc/. /newroot/etc/ 2>/dev/null
$B cp /pi/busybox /pi/launch.sh /newroot/pi/
$B mount --move /dev /newroot/dev
$B mkdir -p /newroot/dev/shm && $B mount -t tmpfs -o mode=1777 shm /newroot/dev/shm
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
exec $B switch_root /newroot /pi/busybox sh -c ". /pi/launch.sh; run"
"""


def launch_script(
    shares: Sequence[tuple[str, str]],
    links: Sequence[tuple[str, str]],
    env: Sequence[tuple[str, str]],
    cwd: str,
    command: Sequence[str],
) -> str:
    """The per-launch part: ``mounts`` runs in stage 1, ``run`` on the new root.

    ``run`` wires stdin/stdout to the channel (open on fd 3) and stderr to
    the console, then ``exec``s the command through ``env -i`` so that it
    becomes PID 1 with exactly ``env`` as its environment.
    """
    q = shlex.quote
    lines = ["# pytest-isolate: rendered per launch", "mounts() {"]
    lines += [f"    share {q(tag)} {q(path)}" for tag, path in shares]
    lines += [f"    link {q(path)} {q(target)}" for path, target in links]
    lines += ["    :", "}"]
    env_words = " ".join(q(f"{name}={value}") for name, value in env)
    argv_words = " ".join(q(word) for word in command)
    lines += [
        "run() {",
        "    exec 2>/dev/console",
        f"    cd {q(cwd)} || {{ echo 'pytest-isolate init: cannot cd to' {q(cwd)} >&2; exit 1; }}",
        "    exec 0<&3 1>&3 3>&-",
        f"    exec /pi/busybox env -i {env_words} {argv_words}",
        "}",
    ]
    return "\n".join(lines) + "\n"
