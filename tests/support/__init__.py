"""What the tests share, not tests themselves: the SLURM cluster and tracking server harness,
the network guard, the part3-like store and its expectations, the two independent reference
models and the specs built on them, the command line in a subprocess, a sweep's grid, Markdown
reading. Imported as `tests.support.<module>`."""
