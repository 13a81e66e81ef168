"""Defences against input intermodel did not write: keys, files, numbers, ids, terminal text."""
