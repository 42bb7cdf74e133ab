"""Which tests are end-to-end: read by the root conftest (the ``e2e`` mark) and its test."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: The slow end-to-end layer: whole directories and single modules whose tests
#: run a pytest session in another process, or start a container, a VM, an
#: image build or a third-party suite. ``pytest -m "not e2e"`` is the fast
#: inner loop (the package's decisions, frames, policies, jails, agents).
E2E = (
    "backends/",
    "container_engine/",
    "integrations/",
    "thirdparty/",
    "vm/",
    "channel/test_shm_channel_selection.py",
    "channel/test_shm_hostile_targets.py",
    "core/test_crashes.py",
    "core/test_hooks.py",
    "core/test_hostile_frames.py",
    "core/test_interrupted_runs.py",
    "core/test_leftovers.py",
    "core/test_limits.py",
    "core/test_oom_killer.py",
    "core/test_options.py",
    "core/test_output_flood.py",
    "core/test_portability.py",
    "core/test_reporting_parity.py",
    "core/test_supported_versions.py",
    "core/test_target_descriptors.py",
    "core/test_timeouts.py",
    "core/test_xdist.py",
    "core/test_xdist_backends.py",
    "images/test_image_build.py",
    "images/test_image_slim.py",
    "tree/test_cgroup_v2_guest.py",
    "untrusted/test_chroot_target.py",
    "untrusted/test_hostile_project.py",
    "untrusted/test_hostile_project_chroot.py",
    "untrusted/test_hostile_project_vm.py",
    "untrusted/test_untrusted_chroot_options.py",
    "untrusted/test_untrusted_options.py",
    "test_packaging.py",
)
