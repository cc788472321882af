"""The bot that answers customers (no Textual here).

::

    from console.bot import BotContext, make_bot
    bot = make_bot("tandem.db", config)        # LLMBot when an endpoint is configured
    ans = await bot.answer(BotContext(conversation_id=1, customer_name="Maya",
                                      messages=[{"role": "customer", "text": "I lost my card"}]))

:class:`EmbeddedBot` works offline and also has ``answer_sync``; :class:`LLMBot` wraps it and
falls back to it on any LLM failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from console.bot.embedded import EmbeddedBot
from console.bot.llm_bot import LLMBot
from console.bot.types import BotAnswer, BotContext

if TYPE_CHECKING:
    from console.config import LLMConfig
    from store.db import Store


def make_bot(
    store: Store | str | Path, config: LLMConfig | None = None, *, timeout: float | None = None
) -> EmbeddedBot | LLMBot:
    """The bot for this deployment: :class:`LLMBot` when ``config`` enables an endpoint.

    :param store: the database path (one connection per thread is opened) or an open Store
        used only from the calling thread
    :param config: LLM settings; ``None`` or a disabled config gives the embedded bot
    :param timeout: seconds per LLM answer (default: the config's timeout)
    """
    embedded = EmbeddedBot(store)
    if config is not None and config.enabled:
        from console.llm import LLM

        return LLMBot(embedded, LLM(config), timeout=timeout)
    return embedded


__all__ = ["BotAnswer", "BotContext", "EmbeddedBot", "LLMBot", "make_bot"]
