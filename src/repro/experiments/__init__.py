"""One module per paper: the protocol that a chapter runs, kept out of the notebook so it is tested."""
