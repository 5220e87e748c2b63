"""`python -m allowlist_sync`."""

from allowlist_sync.cli import main

raise SystemExit(main())
