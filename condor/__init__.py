"""HTCondor for caliber: site presets, their checks and the ``--condor-*`` options (sites.py), the
dask-jobqueue cluster and client (cluster.py), training job files (train_job.py) and a local
stand-in pool for tests (standin/). Imports nothing of caliber's but core. See condor/README.md."""
