"""Whole-product runs: the command line, offline, reliability, a full disk, the tracking server
and the SLURM cluster of docs/CLUSTER.md. Markers (`e2e`, `cluster`), not folders, select tests."""
