"""The write side: actions on stored messages (release, move, reclassify), always with an action log."""
