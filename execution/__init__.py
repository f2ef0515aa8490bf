"""Running chunks: executors (local and HTCondor) and the one place that builds coffea's Runner."""
