"""Experiments: batches of runs (pairings x openers x replicates) with shared rate limits,
resumable as a whole, recorded in one folder with a manifest."""
