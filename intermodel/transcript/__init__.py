"""Transcripts: the append-only JSONL record of a run, its reader and its exports."""
