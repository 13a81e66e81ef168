"""The headless front end: a run's events rendered as plain terminal text."""
