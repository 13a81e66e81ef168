"""Steering a run from outside its process: the control socket's server and client."""
