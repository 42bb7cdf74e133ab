"""Hostile test bodies that try to outlive their test, shared by the process-tree suites.

``tests/broker/test_leftovers.py`` runs them on this host (cgroup v1) and
``tests/supervision/test_cgroup_v2_guest.py`` in a guest with cgroup v2: the same
attack must fail the same way on both hierarchies. Indented by four spaces,
like the generated projects they are pasted into (dedented as a whole).
"""

from __future__ import annotations

_FORK_BOMB = """
    @isolate(pids_limit=40, timeout=TIMEOUT)
    def test_fork_bomb_is_bounded():
        for _ in range(500):
            try:
                pid = os.fork()
            except BlockingIOError:
                return  # the pids limit said no: bounded
            if pid == 0:
                record("bomb")
                while True:
                    try:
                        if os.fork() == 0:
                            record("bomb")
                    except OSError:
                        time.sleep(0.01)
        raise AssertionError("500 forks and no limit")
"""

#: A double-forked ``setsid`` daemon; it records its pid under ``PIDS`` as "daemon".
SETSID_DAEMON = """
    @isolate()
    def test_double_forked_setsid_daemon():
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                record("daemon")
                while True:
                    time.sleep(1)
            os._exit(0)
        os.wait()
        while not os.path.exists(os.path.join(PIDS, "daemon")):
            time.sleep(0.01)
"""


#: The same pids limit for the ``seccomp`` and ``chroot`` targets, which join the
#: broker's cgroup before entering their namespaces.
SANDBOXED_FORK_LOOPS = """
    @isolate("seccomp", pids_limit=40, timeout=60)
    def test_a_seccomp_targets_fork_bomb_is_bounded_too():
        bounded_fork_loop()

    @isolate("chroot", pids_limit=40, timeout=60)
    def test_a_chroot_targets_fork_bomb_is_bounded_too():
        bounded_fork_loop()

    def bounded_fork_loop():
        children = []
        try:
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                children.append(pid)
        except BlockingIOError:
            assert len(children) < 40, len(children)
            return  # the cgroup's pids limit said no
        raise AssertionError("200 forks and no limit")
"""


def fork_bomb(timeout: int) -> str:
    """A fork bomb under ``pids_limit=40``; each process records its pid as "bomb"."""
    return _FORK_BOMB.replace("TIMEOUT", str(timeout))
