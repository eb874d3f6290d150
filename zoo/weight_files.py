"""Weight files: where a weights file comes from and whether it is intact.

Files are package files under zoo/assets/weights/ (the weights the zoo trains) or URLs
(https:// or file://), downloaded once into `$ZOO_HOME/weights/` (default
`~/.keras/zoo/weights/`) through a temporary file that replaces the final name only after its
checksum matched. A cached file is verified before each use; a mismatch removes it and is a
one-line `ZooError`. `ZOO_OFFLINE=1` never downloads and names the missing file. A file with
a published checksum that Keras itself has cached (`~/.keras/models/`, `$KERAS_HOME/models/`,
`/tmp/.keras/models/`) is used in place when it verifies. A file without one is never taken
from those shared caches: its sha256 is recorded next to it at its download
(`<name>.sha256`) and verified on every later use; a cached file without a record (copied
there by hand) is trusted on first use, with a warning, and recorded. A URL a user names
(`url_weight_file`) is cached under `urls/<hash>/`; an optional `#sha256=` fragment is its
checksum. Standard library only (no Keras, no NumPy).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from zoo.errors import ZooError
from zoo.registry import WeightFile

ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "weights"


# ------------------------------------------------------------------- cache and downloads


def zoo_home() -> Path:
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".keras" / "zoo").expanduser()


def cache_dir() -> Path:
    return zoo_home() / "weights"


def offline() -> bool:
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hashers(weight_file: WeightFile) -> dict:
    out = {}
    if weight_file.sha256:
        out["sha256"] = (hashlib.sha256(), weight_file.sha256.lower())
    if weight_file.md5:
        out["md5"] = (hashlib.md5(), weight_file.md5.lower())
    return out


def _chunks(stream):
    return iter(lambda: stream.read(1 << 20), b"")


def _wrong_digest(hashers: dict) -> str | None:
    """None when every digest fed so far equals its expected value, else "<algo> <got>, expected <want>"."""
    for algo, (digest, want) in hashers.items():
        if digest.hexdigest() != want:
            return f"{algo} {digest.hexdigest()}, expected {want}"
    return None


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in _chunks(f):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path, weight_file: WeightFile) -> str | None:
    """None when `path` matches every published checksum, else what differs."""
    hashers = _hashers(weight_file)
    with open(path, "rb") as f:
        for chunk in _chunks(f) if hashers else ():
            for digest, _ in hashers.values():
                digest.update(chunk)
    return _wrong_digest(hashers)


_UNVERIFIED_WARNED = set()


def _warn_unverified(weight_file: WeightFile):
    if not _hashers(weight_file) and weight_file.name not in _UNVERIFIED_WARNED:
        _UNVERIFIED_WARNED.add(weight_file.name)
        warnings.warn(f"{weight_file.url or weight_file.name}: its source publishes no checksum, so its first download is "
                      f"unverified; its sha256 is recorded then and verified on every later use", stacklevel=3)


def _keras_cache_dirs() -> list[Path]:
    """Keras' own download caches: shared (/tmp world-writable), so only for checksummed files."""
    roots = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    roots += [Path.home() / ".keras", Path("/tmp/.keras")]
    return [root / "models" for root in roots]


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _recorded(dest: Path) -> WeightFile | None:
    """The sha256 recorded at `dest`'s download (as a WeightFile to check against), if any."""
    record = _record_path(dest)
    if not record.is_file():
        return None
    return WeightFile(dest.name, sha256=(record.read_text().split() or ["(empty record)"])[0])


def _write_record(dest: Path, digest: str):
    """Write `dest`'s sha256 record (`sha256sum` format) atomically."""
    record = _record_path(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{digest}  {dest.name}\n")
            os.replace(tmp, record)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as err:
        raise ZooError(f"cannot record the sha256 of {dest} in {record}: {err.strerror or err}") from None


def fetch(weight_file: WeightFile) -> Path:
    """A verified local path of `weight_file`: the package file, the cache, or a download."""
    if weight_file.url is None:
        path = ASSETS_DIR / weight_file.name
        if not path.is_file():
            raise ZooError(f"package weights file missing: {path} (reinstall keras-zoo)")
        bad = _mismatch(path, weight_file)
        if bad:
            raise ZooError(f"checksum mismatch: package file {path} has {bad} (reinstall keras-zoo)")
        return path

    dest = cache_dir() / weight_file.name
    published = bool(_hashers(weight_file))
    if dest.is_file():
        expected = weight_file if published else _recorded(dest)
        if expected is None:  # put there by hand: trust on first use
            _write_record(dest, file_sha256(dest))
            warnings.warn(f"{dest}: no published checksum and no record of its download; used unverified, "
                          f"its sha256 now recorded in {_record_path(dest)} and verified on every later use",
                          stacklevel=2)
            return dest
        bad = _mismatch(dest, expected)
        if bad:
            dest.unlink(missing_ok=True)
            if not published:
                _record_path(dest).unlink(missing_ok=True)
            recorded = "" if published else f" (recorded in {_record_path(dest).name})"
            raise ZooError(f"checksum mismatch: cached {dest} has {bad}{recorded}; removed it "
                           f"(the next call downloads it again)")
        _warn_unverified(weight_file)
        return dest
    for keras_dir in _keras_cache_dirs() if published else []:
        keras_copy = keras_dir / weight_file.name
        if keras_copy.is_file() and _mismatch(keras_copy, weight_file) is None:
            return keras_copy
    if offline():
        raise ZooError(f"ZOO_OFFLINE=1 and the weights file is not cached: missing {dest} "
                       f"(download {weight_file.url} to that path, or unset ZOO_OFFLINE)")
    _download(weight_file, dest)
    _warn_unverified(weight_file)
    return dest


def _download(weight_file: WeightFile, dest: Path):
    """Download to a temporary file next to `dest`, verify, then rename atomically."""
    url = weight_file.url
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot create the weights cache {dest.parent}: {err.strerror or err} "
                       f"(set ZOO_HOME to a writable directory)") from None
    print(f"zoo: downloading {url} -> {dest}", file=sys.stderr, flush=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    hashers = _hashers(weight_file)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                for chunk in _chunks(response):
                    out.write(chunk)
                    for digest, _ in hashers.values():
                        digest.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
            raise ZooError(f"cannot download {url}: {reason}; put the file at {dest} "
                           f"to use it offline") from None
        wrong = _wrong_digest(hashers)
        if wrong:
            raise ZooError(f"checksum mismatch for {url}: {wrong}; the download was removed")
        if not hashers:  # no published checksum: record what was downloaded, to verify later uses
            _write_record(dest, file_sha256(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


URL_SCHEMES = ("https", "file")


def is_url(value) -> bool:
    """`scheme://...`: weights named by a URL rather than a tag or a local path."""
    return isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def url_weight_file(url: str) -> WeightFile:
    """The WeightFile of weights a user names by URL (`model.pretrained: https://...`).

    An optional pip-style fragment `#sha256=<64 hex digits>` is its published checksum (the
    download is verified against it); without one the download is recorded and verified on later
    uses, like any file without a published checksum. It is cached as
    `urls/<hash of the URL>/<its file name>` under the weights cache, so URLs that end in the same
    file name (`.../a/model.keras`, `.../b/model.keras`) never share a cache entry.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ZooError(f"{url}: unsupported URL scheme {parts.scheme + '://'!r} "
                       f"(expected {' or '.join(s + '://' for s in URL_SCHEMES)})")
    sha256 = None
    if parts.fragment:
        match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", parts.fragment)
        if match is None:
            raise ZooError(f"{url}: the URL fragment must be #sha256=<64 hex digits>, got #{parts.fragment}")
        sha256 = match.group(1).lower()
    bare = urllib.parse.urlunsplit(parts._replace(fragment=""))
    plain = WeightFile.from_url(bare, sha256)
    key = hashlib.sha256(bare.encode()).hexdigest()[:16]
    return dataclasses.replace(plain, name=f"urls/{key}/{plain.name or 'weights'}")


def fetch_url(url: str) -> Path:
    """A verified local copy of the weights at `url` (downloaded once into the weights cache)."""
    return fetch(url_weight_file(url))
