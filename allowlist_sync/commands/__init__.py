"""Commands other than the sync itself: the `check` preflight and the `demo`."""
