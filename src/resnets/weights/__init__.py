"""Weight files: our exports and checkpoints (files), released and third-party pretrained weights."""
