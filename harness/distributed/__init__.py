"""Running the protocol at scale: experiment files and their jobs, model-host actors, the
runner, the Parquet results store and Ray set-up. May import ``harness.protocol`` and
everything below it."""
