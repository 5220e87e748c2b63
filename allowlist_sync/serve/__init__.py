"""`allowlist-sync serve`: the pipeline on a schedule, with health, status and retries."""
