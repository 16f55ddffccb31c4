"""SLURM batch scripts for cryoal jobs (training, sharded scoring, a whole round)."""
