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
    "container/",
    "integrations/",
    "selftest/",
    "thirdparty/",
    "vm/",
    "channel/test_shm_channel_selection.py",
    "channel/test_shm_hostile_targets.py",
    "broker/test_crashes.py",
    "broker/test_exit_and_debugger.py",
    "broker/test_fixture_scopes.py",
    "broker/test_hooks.py",
    "broker/test_hostile_frames.py",
    "broker/test_interrupted_runs.py",
    "broker/test_leftovers.py",
    "broker/test_neutralised_text.py",
    "broker/test_limits.py",
    "broker/test_matrix_option.py",
    "broker/test_oom_killer.py",
    "broker/test_options.py",
    "broker/test_output_flood.py",
    "broker/test_portability.py",
    "broker/test_reporting_parity.py",
    "broker/test_supported_versions.py",
    "target/test_target_descriptors.py",
    "broker/test_timeouts.py",
    "broker/test_uncaptured_output.py",
    "broker/test_tmp_path_kept.py",
    "broker/test_xdist.py",
    "broker/test_xdist_backends.py",
    "images/test_image_build.py",
    "images/test_image_slim.py",
    "supervision/test_cgroup_v2_guest.py",
    "target/test_fail_closed.py",
    "untrusted/test_chroot_target.py",
    "untrusted/test_hostile_project.py",
    "untrusted/test_hostile_project_chroot.py",
    "untrusted/test_hostile_project_vm.py",
    "untrusted/test_untrusted_chroot_options.py",
    "untrusted/test_untrusted_options.py",
    "test_packaging.py",
)
