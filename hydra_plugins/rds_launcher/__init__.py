"""The suite's Hydra launcher (conf/hydra/launcher/slurm.yaml); Hydra finds plugins only in the
`hydra_plugins` namespace package, which this folder joins from the repository root."""
