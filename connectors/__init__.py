"""Sources and sinks for outside systems, built on streamio's public interfaces."""
