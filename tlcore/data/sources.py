"""Import sources: what to read from a zip, a folder or a CSV, and path safety.

A source is one of

* a zip of class folders (`cats/1.jpg`, `dogs/2.png`; any single top folder level
  such as `data/cats/1.jpg` is fine),
* a server-side folder of class folders (same rules), or
* a CSV of `filepath,label` with a header row; paths are relative to the CSV's
  folder, or to the root of the zip given as `csv_zip`, or the CSV sits at the
  top of the zip being imported.

Planning reads names and sizes only; `read_entry` then reads each file under the
byte limits. Junk (`__MACOSX/`, hidden files, `Thumbs.db`, unsafe paths,
symlinks, folders nested deeper than `MAX_DEPTH`) is skipped with a per-file
reason. Entries with absolute paths, `..` or drive letters are skipped as unsafe;
stored paths come from content hashes, never from entry names, so no entry can
write outside the dataset folder anyway.

Nothing on the server is read from outside the import root: the root is resolved
first, a folder walk never follows a symbolic link, a CSV row whose path leads
through a symbolic link out of the CSV's folder is skipped, and each file is
opened without following a final link and must still be the file that was
listed (same device and inode), so a path swapped for a link meanwhile is not read.
A file whose path or class holds a control character (a newline, a terminal
escape) is skipped too: class names are kept exactly as given and reach every
listing. The skip list writes such characters as escapes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tlcore.data.limits import ImportLimits, TooLarge, human_bytes, read_limited
from tlcore.errors import DatasetError
from tlcore.workspace import CONTROL_CATEGORIES, has_control_characters

_SYSTEM_FILES = ("thumbs.db", "desktop.ini")
_SPLIT_FOLDERS = ("train", "training", "val", "valid", "validation", "test", "testing")
_RATIO_MIN_BYTES = 1 << 20  # tiny entries may compress well (flat BMPs) and harm nobody
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
MAX_DEPTH = 64  # folders below the import root; deeper entries are skipped unread
# The one class of an unlabeled import (`plan_source(..., unlabeled=True)`).
UNLABELED_CLASS = "unlabeled"
_DEPTH_REASON = f"nested deeper than {MAX_DEPTH} folders (not read)"
_LINK_REASON = "symbolic link (not followed)"


@dataclass(frozen=True)
class Entry:
    """One file to import: where it came from, its class and how to read it."""

    source: str  # path shown to the user, relative to the import root
    label: str
    size: int  # bytes, as declared by the zip or the file system
    open: Callable[[], IO[bytes]]


@dataclass
class Plan:
    """What an import will read: entries, files skipped so far, and notes for the report."""

    entries: list[Entry]
    skipped: list[dict[str, str]]
    kind: str  # "folder" (class folders), "csv" (labels from a CSV) or "unlabeled"
    notes: list[str] = dataclasses.field(default_factory=list)


def plan_source(src: Path, csv_zip: str | os.PathLike | None, limits: ImportLimits,
                stack: contextlib.ExitStack, unlabeled: bool = False) -> Plan:
    """What to read from `src`; zips stay open until `stack` closes.

    Names in the plan's skip list are printable (see `printable`). With
    `unlabeled`, every image of a zip or folder goes into the one class
    `UNLABELED_CLASS`, whatever folder it is in.
    """
    plan = _plan_source(src, csv_zip, limits, stack, unlabeled)
    plan.skipped = [{**record, "file": printable(record["file"])} for record in plan.skipped]
    return plan


def printable(name: str) -> str:
    """`name` with its control characters written as escapes (a newline as `\\n`).

    Args:
        name: A file name or path from an import source.

    Returns:
        The name, one printable line.
    """
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in CONTROL_CATEGORIES else c for c in name)


def _plan_source(src: Path, csv_zip: str | os.PathLike | None, limits: ImportLimits,
                 stack: contextlib.ExitStack, unlabeled: bool) -> Plan:
    if unlabeled and (csv_zip is not None or src.suffix.lower() == ".csv"):
        raise DatasetError(f"Refused: an unlabeled import reads a zip or folder of images, not "
                           f"a CSV of labels. Received: source={src.name!r}")
    if csv_zip is not None and src.suffix.lower() != ".csv":
        raise DatasetError(f"Refused: csv_zip only goes with a .csv source. "
                           f"Received: source={src.name!r}")
    src = src.resolve()
    if src.is_dir():
        return _plan_folder(src, limits, unlabeled)
    suffix = src.suffix.lower()
    if suffix == ".csv":
        zf = _open_zip(Path(csv_zip).expanduser(), limits, stack) if csv_zip else None
        text = _read_text_limited(src.open("rb"), limits, src.name)
        return _plan_csv(text, src.name, src.parent, zf, "", limits)
    if suffix == ".zip" or zipfile.is_zipfile(src):
        return _plan_zip(_open_zip(src, limits, stack), limits, unlabeled)
    raise DatasetError(f"Refused: {src.name} is neither a folder, a .zip nor a .csv; give a zip "
                       f"or folder of class folders, or a CSV of filepath,label. "
                       f"Received: source={src.name!r}")


def _open_zip(path: Path, limits: ImportLimits, stack: contextlib.ExitStack) -> zipfile.ZipFile:
    """Open a zip and refuse it unless its declared sizes are within the limits."""
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"Refused: {path.name} is not a readable zip file ({exc}); "
                           f"re-create the archive. Received: {path.name}") from None
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_files:
        raise DatasetError(f"Refused: {path.name} has {len(infos)} files, more than "
                           f"max_files={limits.max_files}; split it or raise "
                           f"TLCORE_MAX_FILES. Received: {len(infos)} files")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > limits.max_total_bytes:
        raise DatasetError(f"Refused: {path.name} expands to {human_bytes(total)}, more than "
                           f"max_total_bytes={human_bytes(limits.max_total_bytes)}; split it "
                           f"or raise TLCORE_MAX_TOTAL_BYTES. Received: {total} bytes")
    for size, csize, what in [(i.file_size, i.compress_size, i.filename) for i in infos] + [
            (total, packed, "the archive")]:
        if size > _RATIO_MIN_BYTES and size > limits.max_compression_ratio * max(csize, 1):
            raise DatasetError(
                f"Refused: {path.name} looks like a zip bomb: {what} expands "
                f"{size / max(csize, 1):.0f}x ({human_bytes(size)} from {human_bytes(csize)}), "
                f"more than max_compression_ratio={limits.max_compression_ratio:g}; nothing was "
                f"extracted. Received: ratio={size / max(csize, 1):.0f}")
    return zf


def _plan_zip(zf: zipfile.ZipFile, limits: ImportLimits, unlabeled: bool) -> Plan:
    skipped: list[dict[str, str]] = []
    files: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        reason = _unsafe_reason(info.filename) or _zip_entry_reason(info)
        parts = _parts(info.filename)
        reason = reason or _junk_reason(parts) or _depth_reason(parts)
        if reason:
            skipped.append({"file": info.filename, "reason": reason})
        else:
            files.append((parts, info))
    csv_entry = None if unlabeled else _find_top_csv(zf, files, limits)
    if csv_entry is not None:
        parts, info, text = csv_entry
        plan = _plan_csv(text, "/".join(parts), None, zf, "/".join(parts[:-1]), limits)
        plan.skipped[:0] = skipped
        return plan
    return _assign_classes(
        [(parts, info.file_size, functools.partial(zf.open, info)) for parts, info in files],
        skipped, unlabeled)


def _zip_entry_reason(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link (not followed)"
    if info.flag_bits & 0x1:
        return "encrypted zip entry"
    return None


def _find_top_csv(zf: zipfile.ZipFile, files: list[tuple[tuple[str, ...], zipfile.ZipInfo]],
                  limits: ImportLimits) -> tuple[tuple[str, ...], zipfile.ZipInfo, str] | None:
    """A labels CSV at the top of the zip (or of its single top folder), if there is one."""
    tops = {parts[0] for parts, _ in files if len(parts) > 1}
    top_depth = 2 if len(tops) == 1 and all(len(p) > 1 for p, _ in files) else 1
    found = []
    for parts, info in files:
        if len(parts) == top_depth and parts[-1].lower().endswith(".csv"):
            text = _read_text_limited(zf.open(info), limits, info.filename)
            if _csv_columns(text) is not None:
                found.append((parts, info, text))
    if len(found) > 1:
        names = ", ".join(info.filename for _, info, _ in found)
        raise DatasetError(f"Refused: the zip has {len(found)} label CSVs at its top ({names}); "
                           f"keep one. Received: {len(found)} CSV files")
    return found[0] if found else None


def _plan_folder(root: Path, limits: ImportLimits, unlabeled: bool) -> Plan:
    """Files below `root` (resolved), walked without recursion and without following links."""
    skipped: list[dict[str, str]] = []
    files: list[tuple[tuple[str, ...], int, Callable[[], IO[bytes]]]] = []
    seen = 0
    pending: list[tuple[str, ...]] = [()]  # folders still to read, the next one last
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(root.joinpath(*rel)) as it:
                items = sorted(it, key=lambda item: item.name)
        except OSError as exc:
            skipped.append({"file": "/".join(rel) + "/",
                            "reason": f"unreadable folder: {exc.strerror or exc}"})
            continue
        folders = []
        # Folders not entered (links, .git, __MACOSX, too deep) are reported once, not
        # per file.
        for item in items:
            parts = (*rel, item.name)
            if item.is_symlink():
                if item.is_dir():
                    skipped.append({"file": "/".join(parts) + "/", "reason": _LINK_REASON})
                else:
                    skipped.append({"file": "/".join(parts), "reason": _LINK_REASON})
                continue
            if item.is_dir(follow_symlinks=False):
                reason = _junk_reason(parts) or (_DEPTH_REASON if len(parts) > MAX_DEPTH
                                                  else None)
                if reason:
                    skipped.append({"file": "/".join(parts) + "/", "reason": reason})
                else:
                    folders.append(parts)
                continue
            seen += 1
            if seen > limits.max_files:
                raise DatasetError(f"Refused: {root.name} has more than max_files="
                                   f"{limits.max_files} files; import a smaller folder or raise "
                                   f"TLCORE_MAX_FILES. Received: over {limits.max_files} files")
            st = item.stat(follow_symlinks=False)
            reason = (_junk_reason(parts) if stat.S_ISREG(st.st_mode)
                      else "not a regular file")
            if reason:
                skipped.append({"file": "/".join(parts), "reason": reason})
            else:
                files.append((parts, st.st_size,
                              functools.partial(_open_listed, Path(item.path), st)))
        pending.extend(reversed(folders))
    _check_total_size(sum(size for _, size, _ in files), limits, root.name)
    return _assign_classes(files, skipped, unlabeled)


def _open_listed(path: Path, listed: os.stat_result) -> IO[bytes]:
    """Open `path` for reading unless it is no longer the regular file that was listed.

    Raises:
        OSError: The path is now a symbolic link, or another file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (listed.st_dev,
                                                                      listed.st_ino):
            raise OSError(f"{path.name} changed since it was listed")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _plan_csv(text: str, csv_name: str, folder: Path | None, zf: zipfile.ZipFile | None,
              zip_prefix: str, limits: ImportLimits) -> Plan:
    """Entries named by a `filepath,label` CSV.

    Files are looked up in `zf` under `zip_prefix` when a zip is given, else under
    `folder`. Labels lose surrounding whitespace (CSV formatting, not content).
    """
    columns = _csv_columns(text)
    if columns is None:
        header = text.splitlines()[0] if text.strip() else ""
        raise DatasetError(f"Refused: {csv_name} needs a header row naming the columns "
                           f"filepath,label. Received: header={header!r}")
    path_col, label_col = columns
    rows = list(csv.reader(io.StringIO(text)))[1:]
    if len(rows) > limits.max_files:
        raise DatasetError(f"Refused: {csv_name} has {len(rows)} rows, more than max_files="
                           f"{limits.max_files}; split it or raise TLCORE_MAX_FILES. "
                           f"Received: {len(rows)} rows")
    zip_index = ({"/".join(_parts(i.filename)): i for i in zf.infolist()
                  if not _unsafe_reason(i.filename)} if zf else {})
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        rel = row[path_col].strip() if len(row) > path_col else ""
        label = row[label_col].strip() if len(row) > label_col else ""
        where = f"{csv_name}:{line}"
        if not rel or not label:
            skipped.append({"file": where, "reason": "empty filepath or label"})
            continue
        if has_control_characters(label):
            skipped.append({"file": rel, "reason": f"control character in the label ({where})"})
            continue
        reason = _unsafe_reason(rel) or _junk_reason(_parts(rel)) or _depth_reason(_parts(rel))
        if reason:
            skipped.append({"file": rel, "reason": reason})
            continue
        posix = "/".join(_parts(rel))
        if zf is not None:
            info = zip_index.get(f"{zip_prefix}/{posix}" if zip_prefix else posix)
            if info is None or info.is_dir():
                skipped.append({"file": rel, "reason": f"missing file ({where})"})
            elif reason := _zip_entry_reason(info):
                skipped.append({"file": rel, "reason": reason})
            else:
                entries.append(Entry(posix, label, info.file_size,
                                      functools.partial(zf.open, info)))
            continue
        # A linked folder on the way may lead out of the CSV's folder: check where the
        # path really is before looking at it (so nothing outside is even probed), and
        # read it from there.
        try:
            path = (folder / posix).parent.resolve() / (folder / posix).name
        except (OSError, RuntimeError):  # a loop of links
            skipped.append({"file": rel, "reason": _LINK_REASON})
            continue
        if not path.is_relative_to(folder):
            skipped.append({"file": rel,
                            "reason": "symbolic link leads out of the CSV's folder (not followed)"})
            continue
        try:
            st = os.lstat(path)
        except OSError:
            skipped.append({"file": rel, "reason": f"missing file ({where})"})
            continue
        if stat.S_ISLNK(st.st_mode):
            skipped.append({"file": rel, "reason": _LINK_REASON})
        elif not stat.S_ISREG(st.st_mode):
            skipped.append({"file": rel, "reason": "not a regular file"})
        else:
            entries.append(Entry(posix, label, st.st_size,
                                 functools.partial(_open_listed, path, st)))
    if zf is None:
        _check_total_size(sum(e.size for e in entries), limits, csv_name)
    return Plan(entries, skipped, "csv")


def _csv_columns(text: str) -> tuple[int, int] | None:
    """Indexes of the filepath and label columns, or None without such a header."""
    header = next(csv.reader(io.StringIO(text)), None)
    if not header:
        return None
    names = [h.strip().lower() for h in header]
    if "filepath" not in names or "label" not in names:
        return None
    return names.index("filepath"), names.index("label")


def _read_text_limited(fh: IO[bytes], limits: ImportLimits, what: str) -> str:
    with fh:
        try:
            data = read_limited(fh, limits.max_file_bytes)
        except TooLarge:
            raise DatasetError(f"Refused: {what} is larger than max_file_bytes="
                               f"{human_bytes(limits.max_file_bytes)}. Received: {what}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"Refused: {what} is not UTF-8 text; save the CSV as UTF-8. "
                           f"Received: {what}") from None


def _check_total_size(total: int, limits: ImportLimits, what: str) -> None:
    if total > limits.max_total_bytes:
        raise DatasetError(f"Refused: {what} holds {human_bytes(total)} of files, more than "
                           f"max_total_bytes={human_bytes(limits.max_total_bytes)}; import less "
                           f"or raise TLCORE_MAX_TOTAL_BYTES. Received: {total} bytes")


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def _unsafe_reason(name: str) -> str | None:
    """Why an entry name could point outside the import root, or None."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE_RE.match(posix):
        return "unsafe path: absolute"
    if ".." in posix.split("/"):
        return "unsafe path: '..' leaves the import root"
    if "\x00" in posix:
        return "unsafe path: NUL character"
    return None


def _depth_reason(parts: tuple[str, ...]) -> str | None:
    return _DEPTH_REASON if len(parts) > MAX_DEPTH + 1 else None


def _junk_reason(parts: tuple[str, ...]) -> str | None:
    """Why a relative path is junk (OS metadata, hidden, system file) or unusable, or None."""
    if not parts:
        return "empty name"
    if any(has_control_characters(p) for p in parts):
        return "control character in the name"
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return "macOS metadata"
    if any(p.startswith(".") for p in parts):
        return "hidden file"
    if parts[-1].lower() in _SYSTEM_FILES:
        return "system file"
    return None


def _assign_classes(files: list[tuple[tuple[str, ...], int, Callable[[], IO[bytes]]]],
                    skipped: list[dict[str, str]], unlabeled: bool) -> Plan:
    """Class = first folder below the import root, after any single top folder levels.

    A root holding only split folders (train/, val/, test/ ...) with class folders
    inside is read as one pool of class folders, to be split again. Unlabeled:
    every file is in `UNLABELED_CLASS`.
    """
    if unlabeled:
        return Plan([Entry("/".join(p), UNLABELED_CLASS, size, opener)
                     for p, size, opener in files], skipped, "unlabeled")
    level = 0
    while True:
        deep = [p for p, _, _ in files if len(p) > level + 1]
        if (not deep or len({p[level] for p in deep}) != 1
                or not any(len(p) > level + 2 for p in deep)):
            break
        level += 1
    notes = []
    tops = sorted({p[level] for p, _, _ in files if len(p) > level + 1})
    if len(tops) > 1 and all(t.lower() in _SPLIT_FOLDERS for t in tops):
        level += 1
        notes.append(f"The split folders {', '.join(tops)} were merged and split again "
                     "with this import's val/test fractions.")
    entries = []
    for parts, size, opener in files:
        source = "/".join(parts)
        if len(parts) <= level + 1:
            skipped.append({"file": source, "reason": "not inside a class folder"})
        else:
            entries.append(Entry(source, parts[level], size, opener))
    return Plan(entries, skipped, "folder", notes)


def read_entry(entry: Entry, limits: ImportLimits, budget: int) -> tuple[bytes | str, int]:
    """The entry's bytes (or why it is skipped) and the byte budget left after it.

    Raises:
        DatasetError: The import as a whole would read more than max_total_bytes.
    """
    if entry.size > limits.max_file_bytes:
        return (f"file too large: {human_bytes(entry.size)} > max_file_bytes="
                f"{human_bytes(limits.max_file_bytes)}"), budget
    limit = min(limits.max_file_bytes, entry.size, budget)
    try:
        with entry.open() as fh:
            data = read_limited(fh, limit)
    except TooLarge:
        if limit == budget:
            raise DatasetError(
                f"Refused: the import reads more than max_total_bytes="
                f"{human_bytes(limits.max_total_bytes)}; nothing was kept. Import less or "
                f"raise TLCORE_MAX_TOTAL_BYTES. Received: more than {limits.max_total_bytes} "
                f"bytes") from None
        return "file changed size while reading", budget
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return f"unreadable: {exc}", budget
    return data, budget - len(data)
