"""What every layer shares: errors, atomic writes, device and precision, downloads, random streams, checkpoint
files, cache paths and report tables."""
