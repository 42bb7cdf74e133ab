"""What a jail contains: the one value the chroot backend hands to ``enter_jail``."""

from __future__ import annotations

from dataclasses import dataclass


class JailError(RuntimeError):
    """The jail could not be built; the message names the step and the path.

    ``step`` is the isolation step that failed ("namespaces", "fresh /proc",
    ...), empty when the request itself was impossible.
    """

    def __init__(self, message: str, step: str = "") -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class JailConfig:
    """The host paths a jailed test may see, and how.

    Everything not named here (or in the system and Python directories the
    jail adds itself) is absent from the test's file system.
    """

    #: Bound read-only at the same path.
    project_dir: str
    #: Fresh writable tmpfs at these paths (the tmp_path base, a scratch dir).
    tmp_dirs: tuple[str, ...] = ()
    #: (host_path, jail_path): read-only unless jail_path is in ``writable``.
    binds: tuple[tuple[str, str], ...] = ()
    #: Host paths bound writable at the same path.
    writable: tuple[str, ...] = ()
    #: Keep the host's network namespace (weaker: loopback services are reachable).
    network: bool = False
    hostname: str = "isolate"
    #: More host paths bound read-only at the same path.
    extra_readonly: tuple[str, ...] = ()
    #: A foreign root file system (a debootstrap or exported image directory):
    #: the system directories are then taken from it (``<root_source><path>``)
    #: instead of the host, and no host Python is added.
    root_source: str = ""
