"""Feature engineering: turning source tables into model inputs."""
