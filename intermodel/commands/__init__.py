"""The handlers of `intermodel`'s commands, grouped by what they do: `running` (run, resume,
branch, replay, batch), `reading` (validate, export, stats, index, inspect) and `steering` (say,
control, status). Each module imports only what its commands share at the top; what one command
needs (an SDK, the terminal UI, SQLite) is imported inside its handler, so `intermodel --help`
loads none of it."""
