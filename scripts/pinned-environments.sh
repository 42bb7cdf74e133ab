# The project's pinned Python environments: sourced by setup-machine,
# update-pins and test, so the three agree on names and contents.
#
# .venv                 development: DEV_EXTRAS, pins in requirements/dev.txt
# .venv-pytest-X.Y.Z    support matrix: MATRIX_EXTRAS with pytest X.Y.Z, pins in
#                       requirements/pytest-X.Y.Z.txt; runs MATRIX_TESTS
# None of them sees the machine's own site-packages, so a package installed by
# hand cannot change what the tests run with.

# The interpreter venvs are made from: PYTHON if set, else the machine's python3.
PIN_PYTHON="${PYTHON:-python3}"

# The oldest Python we claim (pyenv provides it on this kind of machine).
OLDEST_PYTHON="${OLDEST_PYTHON:-$HOME/.pyenv/versions/3.9.18/bin/python3.9}"

DEV_EXTRAS="all,test,dev"
MATRIX_EXTRAS="all"

# Plugins that change every run they are installed in (pytest-randomly reorders
# and reseeds everything, pytest-benchmark and pytest-html add to every header
# and summary): the suite checks them in a venv of their own, made by the tests
# from requirements/plugins.txt (tests/plugins_venv.py).
OTHER_PLUGINS=(pytest-randomly pytest-html pytest-benchmark)

# Oldest and newest of each pytest major version we claim, but the newest 9.x,
# which is the development venv's own.
PYTEST_MATRIX=(8.0.0 8.4.2 9.0.0)

# The focused part of the suite that runs on every pytest of the matrix:
# reporting parity (subtests, warnings, sections, -rA, JUnit) and untrusted mode's
# entry point.
MATRIX_TESTS=(
    tests/broker/test_reporting_parity.py
    tests/broker/test_crashes.py
    tests/untrusted/test_hostile_project_chroot.py
    tests/untrusted/test_untrusted_options.py
)
