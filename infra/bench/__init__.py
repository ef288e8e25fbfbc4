"""`make bench`: the performance table of SPEC §10, each figure beside its floor from the same run."""
