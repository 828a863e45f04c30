"""The decision families, one folder each: problem, family (its registry) and methods."""
