"""A SQLite index of transcripts, so a whole archive of runs can be queried with SQL.

    report = build_index([Path("transcripts")], default_db(Path("transcripts")))
    print(report.summary())

The JSONL transcripts stay the source of truth. The database is derived from them: it can be
deleted and built again at any time, and an index of another schema version is rebuilt by itself.
Its tables, views and example queries are documented in docs/sql.md.

How a build works:
- One run, one transaction: a run's rows in every table are deleted and inserted again together,
  so however a build is interrupted, the database holds each run whole or not at all.
- Incremental: a file whose size and modification time (in ns) are what the index recorded is not
  read again. Transcripts are append-only, so a run that went on, was resumed or finished always
  changes size; a changed file is indexed again.
- An indexed run whose file is gone is removed. Files that are not transcripts, are damaged or
  cannot be read are reported and skipped (rows from an earlier state of such a file are
  removed). An incomplete last line (a torn write) is ignored, as the reader does, and noted.
- The run id is the key. When one run is found at two paths (a copied file), the larger file is
  indexed, since transcripts only grow; then the newer; then the later path. The others are
  reported. The choice depends on the files only, never on the order of earlier builds.
- Paths are stored relative to the database's folder, so an archive moved with its index stays
  valid.
- A rebuild (asked for, or for a new schema) drops only the tables and views the index made, as
  listed in `meta.objects`: people keep their own coding tables in the same database.
- The database is created readable by its owner only (mode 600, and so are its journals), and a
  symbolic link at its path, or at its journals' paths, is refused rather than followed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from intermodel.analysis.sqlfindings import sync_labels
from intermodel.analysis.sqlschema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, Row, run_rows
from intermodel.coding.labels import is_sidecar
from intermodel.errors import TranscriptInvalid, UsageError
from intermodel.records import now_iso
from intermodel.security.files import create_private, refuse_link
from intermodel.transcript.reader import read_header_line, read_transcript
from intermodel.transcript.writer import FORMAT_VERSION

__all__ = ["DB_NAME", "IndexReport", "Skipped", "build_index", "default_db"]

DB_NAME = "intermodel.sqlite"


def default_db(path: str | Path) -> Path:
    """Where the index of `path` goes by default: inside the folder, or beside the file."""
    path = Path(path)
    return (path if path.is_dir() else path.parent) / DB_NAME


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str
    line: int | None = None  # the line at fault, where one is

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


@dataclass
class IndexReport:
    """What a build did. Paths are as found (or, for removed runs, where the index had them)."""

    db: Path
    added: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    torn: list[Path] = field(default_factory=list)  # indexed, but their last line was incomplete
    rebuilt: bool = False  # the database was created (or recreated) from scratch

    def summary(self) -> str:
        counts = (f"{len(self.added)} added, {len(self.updated)} updated, "
                  f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, "
                  f"{len(self.skipped)} skipped")
        return f"{self.db}: {counts}"


class _Skip(Exception):
    """A file that cannot be indexed: why, and the line at fault (where one is)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.line = line


@dataclass(frozen=True)
class _Version:
    """One file's claim to hold a run: where it is, how big and how new."""

    path: Path
    key: str  # the path as the index stores it
    size: int
    mtime_ns: int
    run_id: str
    indexed: bool  # the index already holds exactly this file
    found: bool = True  # found by this build (False: indexed earlier from elsewhere)

    @property
    def rank(self) -> tuple[int, int, str]:
        return (self.size, self.mtime_ns, self.key)


def build_index(paths: Sequence[Path], db: Path, *, rebuild: bool = False) -> IndexReport:
    """Create or update the index `db` from the transcripts in `paths` (files, or folders
    searched recursively for `*.jsonl`). `rebuild` starts from an empty database."""
    files = _discover(paths)
    home = Path(os.path.abspath(db)).parent
    report = IndexReport(db=db)
    with closing(_connect(db)) as conn:
        report.rebuilt = _prepare(conn, db, rebuild)
        stored = _stored(conn, home)
        known = {v.run_id for v in stored.values()}
        # Rows of a file that is gone are dropped last, so that a run whose file was moved
        # is reported as updated at its new path rather than removed.
        gone = {key for key, version in stored.items() if not version.path.exists()}
        for key in gone:
            del stored[key]
        contenders, stale = _probe_all(files, home, stored, report)
        stale |= gone
        for group in _by_run(contenders):
            stale.update(_index_group(conn, group, known, report))
        _drop_stale(conn, stale, home, report)
        # Labels change while their transcripts do not: brought up to date on their own.
        for sidecar, reason, line in sync_labels(conn, home):
            report.skipped.append(Skipped(sidecar, reason, line))
    return report


def _discover(paths: Sequence[Path]) -> list[Path]:
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                for name in names:
                    if name.endswith(".jsonl") and not is_sidecar(name):  # labels: not runs
                        file = Path(folder, name)
                        found.setdefault(os.path.abspath(file), file)
        elif path.exists() or path.is_symlink():
            found.setdefault(os.path.abspath(path), path)  # named explicitly: read whatever it is
        else:
            raise UsageError(f"{given}: no such file or folder")
    return [found[key] for key in sorted(found)]


def _connect(db: Path) -> sqlite3.Connection:
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        # Created mode 600 here, so SQLite (which gives its journals the database's mode) never
        # creates it; a link at the database or its journals' names is refused, not written
        # through (see intermodel.security.files).
        create_private(db)
        for suffix in ("-journal", "-wal", "-shm"):
            refuse_link(f"{db}{suffix}")
        # Autocommit mode: transactions are begun and ended explicitly, one per run.
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot open the index {db}: {exc}") from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UsageError(f"{db} is not a usable SQLite database ({exc})") from None
    return conn


def _prepare(conn: sqlite3.Connection, db: Path, rebuild: bool) -> bool:
    """Make sure `db` holds the current schema; True when it was (re)created."""
    objects = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                           "AND type IN ('table', 'view')").fetchall()
    ours = conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    if objects and not ours:
        raise UsageError(f"{db} is a database but not an intermodel index; it is left "
                         "untouched (choose another file)")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if objects and version == SCHEMA_VERSION and not rebuild:
        return False
    # The index is derived data: an older (or newer) layout is simply built again. Only what
    # intermodel made is dropped; the tables and views people added beside it stay.
    made = _made_by_us(conn)
    theirs = {name for _, name in objects if name not in made}
    needed = sorted(theirs & set(_schema_objects()))
    if needed:
        raise UsageError(f"{db} has a table {', '.join(needed)} that intermodel did not make "
                         "but needs the name of; rename it (ALTER TABLE … RENAME TO …) and "
                         "index again")
    conn.execute("PRAGMA foreign_keys = OFF")
    with _transaction(conn):
        for kind, name in sorted(objects, key=lambda o: o[0] != "view"):
            if name in made:
                conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
        for statement in SCHEMA:
            conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
            ("schema_version", str(SCHEMA_VERSION)), ("transcript_format", str(FORMAT_VERSION)),
            ("created_at", now_iso()), ("objects", json.dumps(_schema_objects()))])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("PRAGMA foreign_keys = ON")
    return True


@cache
def _schema_objects() -> list[str]:
    """The tables and views the schema makes, as SQLite names them."""
    with closing(sqlite3.connect(":memory:")) as scratch:
        for statement in SCHEMA:
            scratch.execute(statement)
        return [name for (name,) in scratch.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]


def _made_by_us(conn: sqlite3.Connection) -> set[str]:
    """The tables and views an index says it made (`meta.objects`); for an index from before it
    said so, those of today's schema, which every earlier schema's are among."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'objects'").fetchone()
        names = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        names = None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return set(names)
    return set(_schema_objects())


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _stored(conn: sqlite3.Connection, home: Path) -> dict[str, _Version]:
    rows = conn.execute("SELECT path, file_size, file_mtime_ns, run_id FROM runs")
    return {key: _Version(Path(os.path.normpath(home / key)), key, size, mtime, run_id,
                          indexed=True, found=False)
            for key, size, mtime, run_id in rows}


def _probe_all(files: Iterable[Path], home: Path, stored: dict[str, _Version],
               report: IndexReport) -> tuple[list[_Version], set[str]]:
    """Every claim to a run: the files found, and runs indexed earlier from other places.
    Also returns the keys of files found that hold no run (any rows they had are stale)."""
    contenders: list[_Version] = []
    stale: set[str] = set()
    for path in files:
        key = os.path.relpath(os.path.abspath(path), home)
        try:
            contenders.append(_probe(path, key, stored.get(key)))
        except _Skip as skip:
            report.skipped.append(Skipped(path, str(skip), skip.line))
            stale.add(key)
    seen = {v.key for v in contenders} | stale
    contenders.extend(v for key, v in stored.items() if key not in seen)
    return contenders, stale


def _probe(path: Path, key: str, indexed: _Version | None) -> _Version:
    try:
        stat = path.stat()
    except OSError as exc:
        raise _Skip(f"cannot read it: {exc.strerror}") from None
    if indexed is not None and (indexed.size, indexed.mtime_ns) == (stat.st_size,
                                                                    stat.st_mtime_ns):
        return replace(indexed, path=path, found=True)
    return _Version(path, key, stat.st_size, stat.st_mtime_ns, _run_id(path), indexed=False)


def _run_id(path: Path) -> str:
    """The run id from the checked header, reading only the first line."""
    try:
        header = read_header_line(path)
    except TranscriptInvalid as exc:
        raise _Skip(exc.reason, exc.line) from None
    run_id: str = header["run_id"]
    return run_id


def _by_run(contenders: Iterable[_Version]) -> list[list[_Version]]:
    """Claims grouped by run, the one to index first in each group."""
    groups: dict[str, list[_Version]] = {}
    for version in contenders:
        groups.setdefault(version.run_id, []).append(version)
    return [sorted(group, key=lambda v: v.rank, reverse=True) for group in groups.values()]


def _index_group(conn: sqlite3.Connection, group: list[_Version], known: set[str],
                 report: IndexReport) -> set[str]:
    """Index the best readable file of one run; returns the keys whose rows are now stale."""
    chosen: _Version | None = None
    stale: set[str] = set()
    for version in group:
        if chosen is not None:
            report.skipped.append(Skipped(version.path, f"the same run as {chosen.path}, which "
                                          "is indexed instead (the larger, then newer file)"))
            stale.add(version.key)
        elif _index_file(conn, version, known, report):
            chosen = version
        else:
            stale.add(version.key)
    return stale


def _index_file(conn: sqlite3.Connection, version: _Version, known: set[str],
                report: IndexReport) -> bool:
    if version.indexed:
        if version.found:
            report.unchanged.append(version.path)
        return True
    try:
        transcript = read_transcript(version.path)
    except TranscriptInvalid as exc:
        report.skipped.append(Skipped(version.path, exc.reason, exc.line))
        return False
    tables = run_rows(transcript, version.key, version.size, version.mtime_ns)
    run_id = transcript.run_id
    try:
        with _transaction(conn):
            replaced = conn.execute("SELECT run_id FROM runs WHERE path = ? AND run_id != ?",
                                    (version.key, run_id)).fetchone()
            conn.execute("DELETE FROM runs WHERE run_id = ? OR path = ?", (run_id, version.key))
            for table, rows in tables.items():
                _insert(conn, table, rows)
    except sqlite3.IntegrityError as exc:  # e.g. a turn number recorded twice
        report.skipped.append(Skipped(version.path, f"damaged: {exc}"))
        return False
    if replaced is not None:
        report.removed.append(version.path)  # the file now holds another run
    (report.updated if run_id in known else report.added).append(version.path)
    if transcript.torn:
        report.torn.append(version.path)
    return True


def _drop_path(conn: sqlite3.Connection, key: str) -> bool:
    with _transaction(conn):
        return conn.execute("DELETE FROM runs WHERE path = ?", (key,)).rowcount > 0


def _drop_stale(conn: sqlite3.Connection, keys: Iterable[str], home: Path,
                report: IndexReport) -> None:
    for key in sorted(keys):
        if _drop_path(conn, key):
            report.removed.append(Path(os.path.normpath(home / key)))


def _insert(conn: sqlite3.Connection, table: str, rows: list[Row]) -> None:
    # Table and column names come from this module, never from a transcript.
    columns = list(rows[0])
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                     f"VALUES ({', '.join(':' + c for c in columns)})", rows)
