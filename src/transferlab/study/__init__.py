"""Studies: a TOML spec expanded into runs, executed durably, recorded in a SQLite store."""
