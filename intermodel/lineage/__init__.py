"""Runs made from recorded runs: resume, branch, replay, and the audit of requests."""
