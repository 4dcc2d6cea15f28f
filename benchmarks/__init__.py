"""mailfax benchmarks (`make bench`)."""
