"""Estimating how many tokens a request takes, without the model's tokenizer.

The estimate is deliberately simple — about four characters per token, plus a few tokens of
framing per message — and then calibrated per agent with the counts its server reports: after each
turn, the ratio between the reported input tokens and the estimate of that same request scales the
next estimate. Uncalibrated, chars/4 is typically within ±25 % for English prose on BPE tokenizers
(worse for code, non-Latin scripts and emoji); calibrated, the error stays within a few per cent
because a conversation's make-up changes slowly. Estimates err towards too many tokens (a margin
is kept), since trimming a turn early is better than a refused request.
"""

from __future__ import annotations

from intermodel.config.request import Request, estimate_text_tokens

__all__ = ["Calibration", "estimate_size", "estimate_tokens"]

MESSAGE_OVERHEAD = 4  # role markers and separators of a chat template
SAFETY_MARGIN = 1.05


def estimate_tokens(request: Request) -> int:
    """Uncalibrated input tokens of `request`."""
    chars = sum(len(m.content) + len(m.thinking) for m in request.messages)
    return estimate_size(len(request.system) + chars, len(request.messages))


def estimate_size(chars: int, messages: int) -> int:
    """`estimate_tokens` of a request of `chars` characters of text (its system prompt, and its
    messages' text and thinking) in `messages` messages: for whoever keeps those counts as a
    request grows, rather than counting its whole history again."""
    return estimate_text_tokens(chars) + MESSAGE_OVERHEAD * (messages + 1)


class Calibration:
    """Per-agent scale factor learnt from the server's reported input tokens."""

    def __init__(self) -> None:
        self.ratio: float | None = None

    def learn(self, estimated: int, reported: int | None) -> None:
        if reported and estimated > 0:
            self.ratio = reported / estimated

    def input_tokens(self, request: Request) -> int:
        return self.scaled(estimate_tokens(request))

    def scaled(self, raw: int) -> int:
        """An uncalibrated estimate, calibrated (with the margin)."""
        return int(raw * (self.ratio or 1.0) * SAFETY_MARGIN) + 1
