"""The one redactor: every configured credential is registered here once, and errors,
spans, the run store, exports and CLI output are all scrubbed by it.

What it removes (each replaced with ``[REDACTED]``):

- **registered credentials**: every value configured as a credential — a model's
  ``api_key`` and ``headers``, an HTTP tool's or MCP server's ``headers``/``env`` (literal
  or ``${env:…}``/``*_from_env``) — registered by the adapters that use them
  (:class:`~paraloom.models.openai.OpenAICompatible`, the HTTP and MCP tools) and by the
  configuration loader; plus anything passed to :func:`register_secret`;
- **environment secrets**: values of variables whose *name* says secret (``*API_KEY*``,
  ``*_KEY``, ``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``, ``*CREDENTIAL*`` …) and the values
  of secret-named headers in ``OTEL_EXPORTER_OTLP*_HEADERS``;
- **secret shapes** (:data:`SECRET_SHAPES`, a documented list drawn from the public
  gitleaks/detect-secrets rule sets): bearer/basic tokens, OpenAI/Anthropic ``sk-`` keys,
  GitHub tokens, AWS access key ids, Slack tokens, Stripe keys, Google API keys, JWTs,
  PEM private key blocks, passwords in URLs, and ``password=…``-style pairs in text;
- **secret-named keys** in JSON-like values (``api_key``, ``authorization``, ``password``,
  ``*_token``, ``cookie`` …), also inside strings that hold JSON (an LLM tool call's
  ``arguments``).

Every event a listener or stream gets (so CLI progress and output), every row of the run
store and every ``RunResult`` loses credentials, environment secrets, secret shapes and
``password=…`` pairs in all its strings (:func:`scrub_model`); the tracing listener scrubs
span attributes as it sets them (sinks scrub what they write rather than every event:
see :mod:`paraloom.orchestrator.events`). Span content, trajectory exports, ``runs
show`` and a store opened with ``redact=True`` also lose the values of secret-named keys
(:func:`scrub_model` with ``full=True``).
Values shorter than 6 characters are never registered (they would erase ordinary words).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    import regex

__all__ = [
    "REDACTED",
    "REDACTOR",
    "SECRET_SHAPES",
    "Redactor",
    "redact",
    "redact_value",
    "register_secret",
    "register_secrets_of",
    "scrub_model",
]

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 6

_SECRET_ENV = re.compile(
    r"API_?KEY|_KEY$|^KEY$|SECRET|TOKEN|PASSW(OR)?D|PASSPHRASE|CREDENTIAL|PRIVATE_KEY", re.I
)
_SECRET_KEY = re.compile(
    r"api[_-]?key|authorization|secret|passw(or)?d|passphrase|credential|private[_-]?key|"
    r"(access|refresh|id|auth|bearer|session)[_-]?token|^token$|cookie|^x-api-key$",
    re.I,
)
_NOT_SECRET = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})

SECRET_SHAPES: tuple[tuple[str, str], ...] = (
    (
        "private key block",
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----",
    ),
    ("bearer token", r"\b[Bb]earer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    ("basic auth", r"\bBasic\s+[A-Za-z0-9+/]{8,}={0,2}"),
    ("OpenAI/Anthropic key", r"\bsk-[A-Za-z0-9_\-]{16,}"),
    ("GitHub token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}"),
    ("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"),
    ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("Stripe key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}"),
    ("password in URL", r"(?<=://)[^/\s:@]{1,64}:[^/\s@]{1,128}(?=@)"),
)
"""(name, regex) of common secret shapes; the list is documented in README "Security"."""

# ``password: x``, ``api_key=x``, ``"token": "x"``, ``password hunter2`` in free text: the
# value (group 2) is replaced, the name kept.
_PAIR = re.compile(
    r"""(\b(?:passw(?:or)?d|passphrase|secret|api[_-]?key|access[_-]?key|secret[_-]?key|"""
    r"""(?:access|refresh|auth|session)?[_-]?token|client[_-]?secret|x-api-key|api-key)"""
    r"""["']?\s*(?:[:=]|\s(?=\S*\d))\s*["']?)([^\s"',;}&]{4,})""",
    re.I,
)


# Lower-case substrings one of which every shape or pair above contains: text without any
# of them (and without a literal credential) is skipped without running the regexes.
_TRIGGERS = (
    "private key", "bearer", "basic ", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "xox", "_live_",
    "_test_", "aiza", "eyj", "://", "passw", "passphrase", "secret", "api_key",
    "api-key", "apikey", "access_key", "access-key", "secret_key", 'token"', "token'",
    "token:", "token=", "token ",
)  # fmt: skip


def _env_secrets(environ: Mapping[str, str]) -> set[str]:
    found: set[str] = set()
    for name, value in environ.items():
        upper = name.upper()
        if upper.startswith("OTEL_EXPORTER_OTLP") and upper.endswith("HEADERS"):
            for pair in value.split(","):
                header, _, header_value = pair.partition("=")
                if _SECRET_KEY.search(header.strip()):
                    found.add(header_value.strip())
                    found.add(header_value.strip().rpartition(" ")[2])
        elif _SECRET_ENV.search(name):
            found.add(value.strip())
    return found


def _usable(values: Iterable[str]) -> set[str]:
    """The values worth scrubbing, and the long words inside them (``Bearer <token>``)."""
    out: set[str] = set()
    for value in values:
        value = value.strip()
        if len(value) >= MIN_SECRET_LEN and value.lower() not in _NOT_SECRET:
            out.add(value)
            out.update(w for w in value.split() if len(w) >= 8)
    return out


class Redactor:
    """Scrubs credentials and secret shapes out of text and JSON-like values.

    ``secrets``: credentials to scrub besides the registered ones; ``environ``: the
    environment to read secret-named variables from (default: ``os.environ``, re-read on
    :meth:`refresh` and :meth:`register`)."""

    def __init__(
        self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._environ = environ
        self._registered: set[str] = set()
        self._env: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self._literals: tuple[str, ...] = ()
        self._shapes = re.compile("|".join(f"(?:{p})" for _, p in SECRET_SHAPES))
        self._partial: _Partial | None = None
        self.register(*secrets)

    @property
    def secrets(self) -> frozenset[str]:
        """Every literal value scrubbed (registered + environment)."""
        return frozenset(self._registered | self._env)

    def register(self, *values: str | SecretStr | None) -> None:
        """Add credentials (``None`` and short values are ignored); re-reads the env."""
        plain = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in values]
        with self._lock:
            self._registered |= _usable(v for v in plain if v)
            self._compile()

    def refresh(self) -> None:
        """Re-read secret-named environment variables (call when a run starts)."""
        with self._lock:
            self._compile()

    def _compile(self) -> None:
        self._env = _usable(_env_secrets(os.environ if self._environ is None else self._environ))
        literal = sorted(self._registered | self._env, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal))) if literal else None
        self._literals = tuple(literal)
        self._partial = None

    # -- strings ------------------------------------------------------------------------

    def credentials(self, text: str) -> str:
        """``text`` without registered credentials and environment secrets."""
        literal = self._literal
        if literal is None or not any(v in text for v in self._literals):
            return text
        return literal.sub(REDACTED, text)

    def text(self, text: str) -> str:
        """``text`` without credentials, secret shapes and ``name=value`` secret pairs."""
        text = self.credentials(text)
        if not _triggered(text):
            return text
        text = self._shapes.sub(REDACTED, text)
        return _PAIR.sub(_pair_value, text)

    def search(self, text: str) -> bool:
        """Whether ``text`` may hold a credential, a secret shape or a secret pair (a
        cheap test: substring checks first, the regexes only when one hits)."""
        if any(v in text for v in self._literals):
            return True
        if not _triggered(text):
            return False
        return self._shapes.search(text) is not None or _PAIR.search(text) is not None

    def pending(self, text: str) -> int:
        """Where the redaction of ``text`` may still change when more text follows: the
        start of the first credential, secret shape or secret pair that ``text`` ends
        with the beginning of (``"… sk-ab"``, ``"… eyJhbG"``), or that runs to its end
        (it may go on), or that overlaps such a place; else ``len(text)``.
        ``text(t[:pending(t)])`` is final: a stream may send it
        (:mod:`paraloom.runtime.streaming`).

        Each pass of :meth:`text` (credentials, shapes, pairs) is checked on the text
        the previous passes made of it, mapped back to ``text``'s positions (a pair's
        value may be a ``[REDACTED]`` of the shapes pass)."""
        size = stable = len(text)
        if not self.search(text):  # nothing to redact: only a beginning at the end counts
            return self._no_false_end(text, self._begun(text))
        done: list[tuple[int, int]] = []  # complete matches that cannot grow
        cur = text
        starts, ends = list(range(size)), list(range(1, size + 1))  # cur[i] in text
        for compiled, partials, replace in self._passes():
            for pattern in partials:
                for m in pattern.finditer(cur, partial=True):
                    first = starts[m.start()] if m.start() < len(cur) else size
                    if first >= stable:
                        break
                    if m.partial or m.end() == len(cur):
                        stable = first
                        break
                    done.append((first, ends[m.end() - 1]))
            cur, starts, ends = _substitute(compiled, replace, cur, starts, ends)
        # a match overlapping the unsettled end may be redacted differently once it
        # settles: hold it back too
        moved = True
        while moved:
            moved = False
            for start, end in done:
                if start < stable < end:
                    stable, moved = start, True
        return self._no_false_end(text, stable)

    def _no_false_end(self, text: str, cut: int) -> int:
        """``cut``, or the start of a secret shape that ends at ``cut`` only because the
        cut falls inside a word: ``\\b`` sees a boundary there that ``text`` does not
        have ("AKIA…EXAMPLE" cut before the "a" that follows it is no AWS key)."""
        if 0 < cut < len(text) and _is_word(text[cut - 1]) and _is_word(text[cut]):
            for m in self._shapes.finditer(text, 0, cut):
                if m.end() == cut:
                    return m.start()
        return cut

    def _passes(self) -> list[tuple[re.Pattern[str], tuple[regex.Pattern[str], ...], _Replace]]:
        """The passes of :meth:`text`, each with its regex-module patterns (re has no
        partial matching). Each shape is also checked on its own: a complete match of
        one must not hide the beginning of another (a JWT inside a private key block
        whose END has not arrived yet)."""
        p = self._partials()
        passes = [] if self._literal is None else [(self._literal, p.literal, _whole)]
        return [*passes, (self._shapes, p.shapes, _whole), (_PAIR, p.pair, _pair_value)]

    def _begun(self, text: str) -> int:
        """Where the first beginning of a secret is in ``text``, which holds no complete
        one (else ``len(text)``). At each character only the patterns that may start
        with it are tried."""
        partial = self._partials()
        if "://" in text:  # a password in a URL may start at any character after it
            begun = partial.every.search(text, partial=True)
            return len(text) if begun is None else begun.start()
        by_first = partial.by_first
        for i, ch in enumerate(text):
            pattern = by_first.get(ch, partial.every) if ch >= "\x80" else by_first.get(ch)
            if pattern is not None and pattern.match(text, i, partial=True):
                return i
        return len(text)

    def _partials(self) -> _Partial:
        partial = self._partial
        if partial is None:
            partial = self._partial = _Partial.of(self._literal, self._shapes)
        return partial

    # -- JSON-like values -----------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with secret-named keys dropped and every string
        scrubbed with :meth:`text`; strings holding a JSON object or array are parsed,
        redacted by key and written back."""
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if _secret_key(k, v) else self.value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def _string(self, value: str) -> str:
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:
                cleaned = self.value(parsed)
                if cleaned != parsed:
                    return json.dumps(cleaned, ensure_ascii=False)
        return self.text(value)


_Replace = Callable[["re.Match[str]"], str]


@dataclass(frozen=True, slots=True)
class _Partial:
    """The redactor's patterns compiled with the regex module, for partial matching."""

    literal: tuple[regex.Pattern[str], ...]
    shapes: tuple[regex.Pattern[str], ...]
    """The shapes at once, then each on its own."""
    pair: tuple[regex.Pattern[str], ...]
    every: regex.Pattern[str]
    """All of them at once (for a text without a complete match: none can hide the
    beginning of another)."""
    by_first: Mapping[str, regex.Pattern[str]]
    """For each ASCII character, the patterns that may start with it, at once."""

    @classmethod
    def of(cls, literal: re.Pattern[str] | None, shapes: re.Pattern[str]) -> _Partial:
        import regex

        parts = [] if literal is None else [literal.pattern]
        parts += [p for _, p in SECRET_SHAPES]
        parts.append(f"(?i:{_PAIR.pattern})")
        compiled = [regex.compile(p) for p in parts]
        by_first: dict[str, regex.Pattern[str]] = {}
        alternations: dict[tuple[int, ...], regex.Pattern[str]] = {}
        for c in map(chr, range(128)):
            # may a match start with c, after any kind of character but "://"?
            which = tuple(
                i
                for i, p in enumerate(compiled)
                if any(p.match(x + c, len(x), partial=True) for x in ("", " ", "a"))
            )
            if which:
                if which not in alternations:
                    alternations[which] = regex.compile("|".join(parts[i] for i in which))
                by_first[c] = alternations[which]
        return cls(
            literal=tuple(regex.compile(p) for p in parts[: -len(SECRET_SHAPES) - 1]),
            shapes=(regex.compile(shapes.pattern), *compiled[-len(SECRET_SHAPES) - 1 : -1]),
            pair=(regex.compile(_PAIR.pattern, _PAIR.flags),),
            every=regex.compile("|".join(parts)),
            by_first=by_first,
        )


def _whole(m: re.Match[str]) -> str:
    return REDACTED


def _pair_value(m: re.Match[str]) -> str:
    return m.group(1) + REDACTED


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _substitute(
    pattern: re.Pattern[str], replace: _Replace, text: str, starts: list[int], ends: list[int]
) -> tuple[str, list[int], list[int]]:
    """``pattern.sub(replace, text)`` with, for each character of the result, where it
    starts and ends in the original text (``starts``/``ends`` of ``text``'s characters);
    a replacement's characters span all of what they replace."""
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    at = 0
    for m in pattern.finditer(text):
        a, b = m.span()
        out.append(text[at:a])
        new_starts += starts[at:a]
        new_ends += ends[at:a]
        piece = replace(m)
        out.append(piece)
        new_starts += [starts[a]] * len(piece)
        new_ends += [ends[b - 1]] * len(piece)
        at = b
    if not at:
        return text, starts, ends
    out.append(text[at:])
    return "".join(out), new_starts + starts[at:], new_ends + ends[at:]


_TRIGGERED = re.compile("|".join(map(re.escape, _TRIGGERS)))


def _triggered(text: str) -> bool:
    return _TRIGGERED.search(text.lower()) is not None


def _secret_key(key: object, value: Any) -> bool:
    return (
        isinstance(key, str)
        and _SECRET_KEY.search(key) is not None
        and not isinstance(value, Mapping | list | tuple | bool | None)
    )


REDACTOR = Redactor()
"""The process-wide redactor every sink uses."""


def register_secret(*values: str | SecretStr | None) -> None:
    """Register credentials with the process-wide redactor."""
    REDACTOR.register(*values)


def register_secrets_of(model: BaseModel) -> None:
    """Register every :class:`~pydantic.SecretStr` value inside a (nested) pydantic model:
    the fields a configuration declares as credentials."""
    REDACTOR.register(*_secret_strs(model))


def _secret_strs(value: Any) -> Iterable[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_strs(getattr(value, name))
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _secret_strs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _secret_strs(v)


def redact(text: str) -> str:
    """``text`` scrubbed by the process-wide redactor (credentials and secret shapes)."""
    return REDACTOR.text(text)


def redact_value(value: Any) -> Any:
    """A JSON-like value scrubbed by the process-wide redactor (keys, shapes, credentials)."""
    return REDACTOR.value(value)


M = TypeVar("M", bound=BaseModel)


def scrub_model(model: M, *, full: bool = False, redactor: Redactor | None = None) -> M:
    """``model`` (an event, a result, a stored run, a trajectory record) without secrets.

    Default: every string loses credentials, environment secrets, secret shapes and
    ``name=value`` secret pairs (:meth:`Redactor.text`). ``full=True`` also drops the
    values of secret-named keys, inside JSON strings too (:meth:`Redactor.value`: for
    exports and a store opened with ``redact=True``). Returns ``model`` itself when there
    is nothing to scrub (the common case: a walk over the payload's strings, ids and
    names skipped, and substring checks over them)."""
    r = redactor or REDACTOR
    if not full:
        found: list[str] = []
        _payload_strings(model, found)
        if not found or not r.search("\n".join(found)):
            return model
    data = model.model_dump(mode="json")
    cleaned = r.value(data) if full else _texts(r, data)
    return model if cleaned == data else type(model).model_validate(cleaned)


# Fields of paraloom's own models that hold ids and names, never user data (skipped by
# the quick test of scrub_model; a full scrub still covers them).
_ID_FIELDS = frozenset(
    {
        "run_id", "call_id", "parent_call_id", "llm_call_id", "subtask_id", "id", "type",
        "action", "kind", "status", "workflow", "planner", "model", "request_model",
        "response_model", "provider", "step_kind", "finish_reason", "depends_on",
    }
)  # fmt: skip


_SCALARS = frozenset({int, float, bool, type(None), Decimal})
_EMPTY = frozenset({dict, list})  # an empty one holds no string: not walked


def _payload_strings(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(value)
    elif kind in _SCALARS:
        return
    elif kind is not dict and kind is not list and isinstance(value, BaseModel):
        for key, item in value.__dict__.items():
            kind = type(item)
            if kind not in _SCALARS and key not in _ID_FIELDS and (kind not in _EMPTY or item):
                _payload_strings(item, out)
    elif kind is dict or isinstance(value, Mapping):  # no abstract-class check for a dict
        for key, item in value.items():
            out.append(key if type(key) is str else str(key))
            if type(item) not in _SCALARS:
                _payload_strings(item, out)
    elif isinstance(value, list | tuple | frozenset | set):
        for item in value:
            _payload_strings(item, out)
    elif isinstance(value, str):  # a str subclass (an enum value)
        out.append(str(value))


def _texts(r: Redactor, value: Any) -> Any:
    if isinstance(value, str):
        return r.text(value)
    if isinstance(value, dict):
        return {k: _texts(r, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts(r, v) for v in value]
    return value
