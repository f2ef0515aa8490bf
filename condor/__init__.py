"""HTCondor for caliber: dask-jobqueue cluster factory and site presets (cluster.py), training
job files (train_job.py) and a local stand-in pool for tests (standin/). See condor/README.md."""
