"""Source data: the contract, reading, validation, quarantine, pseudonyms, synthetic data."""
