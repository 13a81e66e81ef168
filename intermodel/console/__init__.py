"""The headless front end: a run's events as plain terminal text (`render`), a run driven without
the terminal UI (`headless`), and a batch's progress (`progress`)."""
