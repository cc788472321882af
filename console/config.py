"""LLM settings: where the OpenAI-compatible endpoint is, which model, how long to wait.

Everything works with no configuration at all: then :attr:`LLMConfig.enabled` is false and
the bot and the drafts use their embedded engines. Environment variables win over the
config file, so a one-off ``TANDEM_MODEL=... tandem demo`` needs no editing.

========================  ====================  ==============================================
environment variable      ``tandem.toml`` key   read by
========================  ====================  ==============================================
``OPENAI_BASE_URL``       ``llm.base_url``      console.llm (every LLM request)
``OPENAI_API_KEY``        ``llm.api_key``       console.llm (sent as the bearer token)
``TANDEM_MODEL``          ``llm.model``         console.llm; shown on drafts and bot answers
``TANDEM_LLM_TIMEOUT``    ``llm.timeout``       console.llm (seconds per request; default 8)
``TANDEM_JUDGE_BUDGET``   ``llm.judge_budget``  the hub: seconds the bot's answer waits for the
                                                LLM's triage opinion (default 1.5; 0: never waits,
                                                a late opinion still raises the conversation)
``TANDEM_CONFIG``         (n/a)                 this module: path of the config file
========================  ====================  ==============================================

The config file is ``$TANDEM_CONFIG`` if set, else ``./tandem.toml`` when it exists::

    [llm]
    base_url = "http://127.0.0.1:8000/v1"
    model = "smollm2"
    timeout = 10

Who builds an :class:`LLMConfig`: the command, once, at start; everything below gets it
passed down frozen and never reads the environment or the file itself. ``tandem serve`` (the
hub's bot, via :func:`console.bot.make_bot`), ``tandem console`` and ``tandem demo`` (agent
drafts: the app hands it to each composer), ``tandem triage`` (the optional LLM judge). All of
them send through :class:`console.llm.LLM`, which redacts personal data first. A file or
variable that cannot be used stops the command with one line naming it.

An endpoint counts as configured when a base URL or an API key is set (a key alone means
the OpenAI API itself). Local servers (llama.cpp, Ollama, vLLM) accept any key, so none is
required with a base URL.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 8.0
DEFAULT_JUDGE_BUDGET = 1.5  # seconds; DESIGN section 5
CONFIG_FILE = "tandem.toml"


class ConfigError(ValueError):
    """The config file or an environment variable holds something unusable."""


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """How to reach the LLM, or that there is none.

    :param base_url: the OpenAI-compatible API root (``.../v1``); ``None`` for OpenAI itself
    :param api_key: bearer token; local servers accept any value
    :param model: model name passed on every request
    :param timeout: seconds a request may take before callers fall back
    :param source: where the settings came from, for ``--help``-style diagnostics
    :param judge_budget: seconds the hub's bot waits for the LLM's triage opinion
    """

    base_url: str | None = None
    api_key: str | None = None
    model: str = DEFAULT_MODEL
    timeout: float = DEFAULT_TIMEOUT
    source: str = "defaults"
    judge_budget: float = DEFAULT_JUDGE_BUDGET

    @classmethod
    def from_env(cls) -> LLMConfig:
        """The settings from the environment and the config file (see :func:`load_config`)."""
        return load_config()

    @property
    def enabled(self) -> bool:
        """True when an endpoint is configured; otherwise use the embedded engines."""
        return bool(self.base_url or self.api_key)

    def describe(self) -> str:
        """One line for logs and status bars; never includes the key."""
        if not self.enabled:
            return "LLM: not configured (embedded engines)"
        where = self.base_url or "api.openai.com"
        return f"LLM: {self.model} at {where} (timeout {self.timeout:g}s, from {self.source})"


def _read_file(path: Path, table: str = "llm") -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    section = data.get(table, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [{table}] must be a table")
    return section


def _timeout(value: object, where: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: timeout must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= 600:
        raise ConfigError(f"{where}: timeout must be between 0 and 600 seconds")
    return seconds


def load_config(
    env: Mapping[str, str] | None = None, path: str | os.PathLike[str] | None = None
) -> LLMConfig:
    """Read the LLM settings from the config file and the environment (which wins).

    :param env: the environment to read (default ``os.environ``); tests pass a dict
    :param path: an explicit config file; else ``$TANDEM_CONFIG``, else ``./tandem.toml`` if present
    :raises ConfigError: an explicit config file is missing or malformed, a bad timeout or URL
    """
    env = os.environ if env is None else env
    file_values: dict[str, object] = {}
    sources: list[str] = []
    explicit = path or env.get("TANDEM_CONFIG")
    if explicit:
        file_values = _read_file(Path(explicit))
        sources.append(str(explicit))
    elif Path(CONFIG_FILE).is_file():
        file_values = _read_file(Path(CONFIG_FILE))
        sources.append(CONFIG_FILE)

    def pick(var: str, key: str) -> str | None:
        if env.get(var):
            if "environment" not in sources:
                sources.append("environment")
            return env[var]
        value = file_values.get(key)
        return None if value is None else str(value)

    base_url = pick("OPENAI_BASE_URL", "base_url")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"OPENAI_BASE_URL must start with http:// or https:// (got {base_url!r})")
    api_key = pick("OPENAI_API_KEY", "api_key")
    model = pick("TANDEM_MODEL", "model") or DEFAULT_MODEL
    raw_timeout = pick("TANDEM_LLM_TIMEOUT", "timeout")
    timeout = (
        DEFAULT_TIMEOUT if raw_timeout is None else _timeout(raw_timeout, "TANDEM_LLM_TIMEOUT")
    )
    raw_budget = pick("TANDEM_JUDGE_BUDGET", "judge_budget")
    budget = DEFAULT_JUDGE_BUDGET
    if raw_budget is not None:
        try:
            budget = float(raw_budget)
        except ValueError:
            raise ConfigError(
                f"TANDEM_JUDGE_BUDGET: a number of seconds, not {raw_budget!r}"
            ) from None
        if not 0 <= budget <= 60:
            raise ConfigError("TANDEM_JUDGE_BUDGET: between 0 and 60 seconds")
    return LLMConfig(
        base_url=base_url.rstrip("/") if base_url else None,
        api_key=api_key,
        model=model,
        timeout=timeout,
        source=" + ".join(sources) or "defaults",
        judge_budget=budget,
    )


MIN_SECRET = 16


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where the hub POSTs its events, and the secret they are signed with.

    :param urls: endpoints (``http://`` or ``https://``); none: no webhooks
    :param secret: the shared HMAC-SHA256 key (``TANDEM_WEBHOOK_SECRET`` or ``webhooks.secret``)
    """

    urls: tuple[str, ...] = ()
    secret: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def load_webhook_config(
    urls: tuple[str, ...] | list[str] = (),
    env: Mapping[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> WebhookConfig:
    """Webhook endpoints from ``urls`` (``tandem serve --webhook``) and ``[webhooks] urls`` in
    the config file; the secret from ``TANDEM_WEBHOOK_SECRET`` or ``[webhooks] secret``.

    The secret is never a command-line option: other users can read a process's arguments.

    :raises ConfigError: a URL that is not http(s), endpoints without a secret, a short secret
    """
    env = os.environ if env is None else env
    explicit = path or env.get("TANDEM_CONFIG")
    section: dict[str, object] = {}
    if explicit:
        section = _read_file(Path(explicit), "webhooks")
    elif Path(CONFIG_FILE).is_file():
        section = _read_file(Path(CONFIG_FILE), "webhooks")
    from_file = section.get("urls", [])
    if isinstance(from_file, str):
        from_file = [from_file]
    if not isinstance(from_file, list) or not all(isinstance(u, str) for u in from_file):
        raise ConfigError("webhooks.urls must be a list of URLs")
    every = tuple(dict.fromkeys([*urls, *from_file]))
    for url in every:
        if not url.startswith(("http://", "https://")) or len(url) > 2000:
            raise ConfigError(f"webhook URL must start with http:// or https:// (got {url[:80]!r})")
    secret = env.get("TANDEM_WEBHOOK_SECRET") or section.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise ConfigError("webhooks.secret must be a string")
    if every and not secret:
        raise ConfigError(
            "webhooks are signed: set TANDEM_WEBHOOK_SECRET (or secret under [webhooks] in the "
            "config file) to a shared secret of at least 16 characters"
        )
    if secret is not None and len(secret) < MIN_SECRET:
        raise ConfigError(f"the webhook secret is too short (at least {MIN_SECRET} characters)")
    return WebhookConfig(every, secret or None)
