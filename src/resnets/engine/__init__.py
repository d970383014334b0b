"""The training engine: the lifecycle of a run that classification and detection training share (run folder, lock,
resume policy, checkpoints, signals, metrics, sessions, schedule, torchrun)."""
