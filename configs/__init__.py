"""Example pairings; installed as intermodel.configs so `intermodel run` finds its demo."""
