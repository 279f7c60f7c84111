"""One module per external calendar system; each speaks its protocol and nothing else."""
