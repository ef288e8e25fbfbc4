"""`make bench`: the performance table of REQUIREMENTS §10, each figure beside its floor from the same run."""
