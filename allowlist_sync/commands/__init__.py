"""Commands around the sync: the `check` preflight, `check-ip`, `demo`, the `emulator`
command line, and `sync` / `serve` with a config file (`fleetrun`)."""
