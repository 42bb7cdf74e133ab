"""Which host directories a jail needs: the system, and the Python actually running.

The Python prefix may live under a home directory (pyenv: /root/.pyenv/...):
only that directory is exposed, never the home directory around it. The
choice is pure (``python_dir_candidates``, ``collapse_nested``) and the
functions that look at the running interpreter are thin and cached.
"""

from __future__ import annotations

import functools
import os
import site
import sys
from collections.abc import Iterable

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: The parts of /etc that programs need to run (dynamic loader, user names,
#: name service, time zone, TLS roots, alternatives). The rest of /etc (host
#: keys, hostname, machine-id, service configuration) stays out.
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "debian_version",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "magic",
    "magic.mime",
    "mime.types",
    "mtab",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)


def collapse_nested(paths: Iterable[str]) -> tuple[str, ...]:
    """Sorted, deduplicated paths with those inside another one dropped."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if not any(is_within(path, parent) for parent in kept):
            kept.append(path)
    return tuple(kept)


def is_within(path: str, parent: str) -> bool:
    """True when ``path`` is ``parent`` or lies below it (both normalized, absolute)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def python_dir_candidates(
    prefixes: Iterable[str],
    site_dirs: Iterable[str],
    added_dirs: Iterable[str],
    too_broad: Iterable[str],
) -> tuple[str, ...]:
    """The directories to expose for an interpreter, given already resolved paths.

    ``added_dirs`` (from ``.pth`` files) are kept unless they are one of
    ``too_broad`` or contain one (``/``, a home directory, the current
    directory: exposing them would expose far more than Python).
    """
    broad = [os.path.normpath(p) for p in too_broad if p]
    chosen = [p for p in (*prefixes, *site_dirs) if p]
    for entry in added_dirs:
        if not entry or not os.path.isabs(entry):
            continue
        entry = os.path.normpath(entry)
        if any(is_within(b, entry) for b in broad):
            continue
        chosen.append(entry)
    return collapse_nested(chosen)


@functools.cache
def default_system_dirs() -> tuple[str, ...]:
    """What exists of the system directories and of the minimal /etc."""
    candidates = (*SYSTEM_DIRS, *(f"/etc/{name}" for name in ETC_ENTRIES))
    return tuple(p for p in candidates if os.path.lexists(p))


@functools.cache
def python_dirs() -> tuple[str, ...]:
    """Minimal directories for the running interpreter and its packages (real paths).

    The prefixes, the site-packages directories and the directories their
    ``.pth`` files add (editable installs). Not the rest of ``sys.path``:
    pytest puts test directories there, and those are the project's to bind.
    Cached: the broker may call it once before forking, so that every target
    inherits the answer.
    """
    real = os.path.realpath
    prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    if sys.executable:
        prefixes.append(os.path.dirname(real(sys.executable)))
    site_dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    if user_site and user_site in sys.path:
        site_dirs.append(user_site)
    site_dirs = [real(p) for p in site_dirs if os.path.isdir(p)]
    added = [real(p) for d in site_dirs for p in _pth_dirs(d)]
    return python_dir_candidates(
        [real(p) for p in prefixes if p and os.path.isdir(p)],
        site_dirs,
        [p for p in added if os.path.isdir(p)],
        _too_broad_dirs(),
    )


def pth_path_lines(site_dir: str, text: str) -> tuple[str, ...]:
    """The directories a ``.pth`` file adds: its lines that are neither comments nor imports."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "import ", "import\t")):
            continue
        found.append(os.path.normpath(os.path.join(site_dir, line)))
    return tuple(found)


def _pth_dirs(site_dir: str) -> tuple[str, ...]:
    found: list[str] = []
    for name in sorted(os.listdir(site_dir)):
        if name.endswith(".pth"):
            try:
                with open(os.path.join(site_dir, name), encoding="utf-8") as handle:
                    found.extend(pth_path_lines(site_dir, handle.read()))
            except (OSError, UnicodeDecodeError):
                continue
    return tuple(found)


def _too_broad_dirs() -> tuple[str, ...]:
    homes = {os.path.expanduser("~"), "/root", "/home", "/tmp", "/var", "/etc", "/"}
    try:
        import pwd

        homes.update(entry.pw_dir for entry in pwd.getpwall())
    except ImportError:
        pass
    homes.add(os.getcwd())
    return tuple(sorted(os.path.realpath(h) for h in homes if h))
