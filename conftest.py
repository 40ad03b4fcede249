# Fixtures shared by every test suite in the repo (real control plane, toolchain paths).
pytest_plugins = ["gitops_testing.plugin"]
