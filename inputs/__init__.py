"""Input and output files: filesets, the file pre-check, training shards, output writing."""
