"""When to retry a failed turn, and how long to wait first.

One policy for every provider (the SDKs' own retries are off): exponential backoff with jitter,
a server's Retry-After honoured up to a cap, and a limit on attempts and on the total wait of one
turn. Fatal errors are never retried. A failure of one server of an endpoint pool while another
is ready (`ProviderError.elsewhere`) is retried at once: the next attempt goes to that server.
"""

from __future__ import annotations

import random

from intermodel.config.model import RetryConfig
from intermodel.errors import ProviderError

__all__ = ["RetryPolicy"]


class RetryPolicy:
    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()

    def wait_before_retry(self, error: ProviderError, failures: int, waited: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        `failures` counts failed attempts of this turn so far (1 after the first failure);
        `waited` is the time already spent waiting between its attempts.
        """
        c = self.config
        if not error.transient or failures > c.attempts:
            return None
        if error.elsewhere:
            return 0.0
        backoff = min(c.backoff_max, c.backoff_initial * 2.0 ** (failures - 1))
        # Equal jitter: at least half the backoff, so waits still grow, but clients desynchronise.
        wait = backoff * (0.5 + self._rng.random() / 2)
        if error.retry_after is not None:
            # The server knows best, but an unattended run must not sleep for hours on its word.
            wait = max(wait, min(error.retry_after, c.max_retry_after))
        if waited + wait > c.max_wait:
            return None
        return round(wait, 3)
