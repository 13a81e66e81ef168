"""The engine: sessions (a dialogue or a panel), their turns, requests, budgets and events."""
