"""Trigger words in prompts (R4): generation uses the word of the version it pins."""

from __future__ import annotations

import re


def ensure_trigger_word(prompt: str, trigger_word: str) -> str:
    """Return the prompt with the trigger word in it as a whole word; prepend it when absent."""
    prompt = prompt.strip()
    if re.search(rf"(?<![\w]){re.escape(trigger_word)}(?![\w])", prompt):
        return prompt
    return f"{trigger_word} {prompt}".strip()
