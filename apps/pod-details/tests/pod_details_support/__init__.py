"""Test helpers of pod-details, in a package named after the app so several apps' suites share one session."""
