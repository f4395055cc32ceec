"""ADA-SAM training: data, the multitask model with gradient feedback, losses, loop, metrics,
evaluation, baselines (SAM-Mix, GT-box oracle, U-Net)."""
