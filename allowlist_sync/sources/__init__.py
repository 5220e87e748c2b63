"""Where ranges come from: the source kinds a config file names, loaded once per run."""
