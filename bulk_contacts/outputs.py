"""Every file the tool writes, written safely: checked before the work starts, never replaced
without leave, never left half-written, and formula-safe when it is CSV.

- `check_outputs` is what the CLI runs when options are parsed, before any network call or
  planning: the folder exists and a file can be created in it (a real probe: `os.access` says yes
  to root on read-only folders such as /proc), the suffix is one the writer knows, the path is a
  regular file or nothing, no two outputs are the same file and none is the file read, and an
  existing file is refused unless `--overwrite` (a log is appended to; a journal is never
  replaced: it is the only way to undo its run).
- `replacing` / `open_replacing` / `write_text` write a whole file to a temporary name in the same
  folder, fsync it, and rename it into place (`os.link` when nothing may be replaced, so a file
  that appeared meanwhile is still not replaced; `os.replace` with `--overwrite`). An
  interrupted write (a kill, a full disk) leaves the good file where it was.
- `open_new` starts a file that is streamed line by line (results, failed rows): a kill leaves
  the lines written so far, which is the record of what was done.
- `CsvWriter` is the one CSV writer: a value a spreadsheet would run as a formula gets a leading
  apostrophe (`formula_safe`); the reader takes it off again only in files the tool wrote to be
  read back (an export, failed rows).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import InputError

OVERWRITE_HINT = "pass --overwrite to replace it"
# The suffixes each writer knows: checked up front by the CLI, and again by the writer.
SHEET_SUFFIXES = (".xlsx", ".csv")  # template, export, apply and rollback results
PLAN_FILE_SUFFIXES = (".json",)  # what `apply` reads as a plan rather than a roster
PLAN_REPORT_SUFFIXES = (".json", ".csv", ".xlsx", ".html")
VALIDATION_REPORT_SUFFIXES = (".csv", ".json", ".xlsx")
# JSON-lines files: the journal, --log-file, the sandbox's --request-log.
LINES_SUFFIXES = (".jsonl", ".json", ".log", ".txt")


class OutputExists(InputError):
    """The file is there, and the caller did not ask to replace it: it was left untouched."""


# up-front checks


def check_output(
    path: Path,
    option: str,
    suffixes: Iterable[str],
    *,
    overwrite: bool = False,
    mode: str = "replace",
) -> None:
    """Raise InputError (one line naming `option`) unless `path` can be written.

    mode: "replace" (a whole file: an existing one only with `overwrite`), "append" (a log or a
    journal: an existing file is added to, never replaced).
    """
    known, what = tuple(suffixes), f"{option} {path}"
    if path.suffix.lower() not in known:
        raise InputError(f"{what}: use a {_listed(known)} file name")
    if path.is_dir():
        raise InputError(f"{what}: is a folder; give a file name")
    check_folder(path.parent, what)
    if not path.exists():
        return
    if not path.is_file():  # a device, a FIFO: never replaced, and a FIFO would block
        raise InputError(f"{what}: is not a regular file; give another file name")
    if mode == "append":
        try:
            path.open("a").close()
        except OSError as error:
            raise InputError(f"{what}: cannot be added to ({error.strerror or error})") from None
    elif not overwrite:
        raise InputError(f"{what}: exists (left untouched); {OVERWRITE_HINT}")


def check_folder(folder: Path, what: str) -> None:
    """The folder exists and a file can be created in it; else InputError naming `what`."""
    folder = Path.cwd() if folder == Path() else folder  # named, rather than "."
    if not folder.exists():
        raise InputError(f"{what}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise InputError(f"{what}: {folder} is not a folder")
    try:
        probe = _create_exclusive(folder, ".bulk-contacts-probe")
    except OSError as error:
        raise InputError(
            f"{what}: cannot write in the folder {folder} ({error.strerror or error})"
        ) from None
    os.close(probe[0])
    os.unlink(probe[1])


def _listed(suffixes: tuple[str, ...]) -> str:
    return ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]


# whole files: temporary name, fsync, rename

# Windows opens a descriptor in text mode unless told (reads stop at 0x1A and turn CR LF into LF,
# writes turn LF into CR LF): every descriptor here is binary. 0 elsewhere.
O_BINARY: int = getattr(os, "O_BINARY", 0)


@contextlib.contextmanager
def replacing(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write the whole file to. When the block ends, the file
    is fsynced and renamed into place; if it raises, the temporary file is removed and `path` is
    as it was. Without `overwrite`, an existing `path` raises OutputExists and is untouched."""
    if not overwrite and path.exists():
        raise OutputExists(f"{path}: exists (left untouched); {OVERWRITE_HINT}")
    handle, temporary = _create_exclusive(path.parent, f".{path.name}")
    os.close(handle)
    try:
        yield temporary
        _fsync_file(temporary)
        _keep_mode(path, temporary)
        _publish(temporary, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


@contextlib.contextmanager
def open_replacing(
    path: Path, overwrite: bool = False, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[str]]:
    """`replacing`, as an open text file."""
    with (
        replacing(path, overwrite) as temporary,
        temporary.open("w", encoding=encoding, newline=newline) as handle,
    ):
        yield handle


def write_text(path: Path, text: str, overwrite: bool = False, encoding: str = "utf-8") -> None:
    with open_replacing(path, overwrite, encoding) as handle:
        handle.write(text)


def _create_exclusive(folder: Path, prefix: str) -> tuple[int, Path]:
    """A new, empty file in `folder` with a random name (mode 0666 less the umask, as any new
    file would get)."""
    for _ in range(100):
        candidate = folder / f"{prefix}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(
                candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY, 0o666
            ), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def _fsync_file(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY | O_BINARY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot fsync a folder, which is no error.
    Windows cannot open a folder as a file at all (NTFS journals the rename itself)."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | O_BINARY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _keep_mode(path: Path, temporary: Path) -> None:
    """A replaced file keeps its permissions."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))


def _publish(temporary: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if `path` appeared meanwhile: nothing is replaced
    except FileExistsError:
        raise OutputExists(f"{path}: exists (left untouched); {OVERWRITE_HINT}") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise OutputExists(f"{path}: exists (left untouched); {OVERWRITE_HINT}") from None
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def close_workbook(workbook: Any) -> None:
    """Close (write) an xlsxwriter workbook. xlsxwriter reports a failed write (a full disk...)
    as its own FileCreateError: the OSError it wraps is raised instead, as other writers do."""
    from xlsxwriter.exceptions import FileCreateError

    try:
        workbook.close()
    except FileCreateError as error:
        cause = error.args[0] if error.args else None
        raise cause if isinstance(cause, OSError) else OSError(str(error)) from None


@contextlib.contextmanager
def written_workbook(
    path: Path, options: dict[str, Any] | None = None, visible: bool = True
) -> Iterator[Any]:
    """An xlsxwriter workbook (`new_workbook`, or a plain one), written to `path` when the
    block ends (`close_workbook`). If the block or the write fails (a full disk), nothing is
    left open or behind, at once rather than when the garbage collector gets to it: the
    temporary files xlsxwriter keeps (constant_memory's row data, the parts of the zip) are
    closed and removed with the folder they were made in, and the zip it was writing to `path`
    is closed (xlsxwriter leaves it open in the failed frame)."""
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="bulk-contacts-xlsx-")
    settings = {**(options or {}), "tmpdir": scratch}
    try:
        if visible:
            workbook = new_workbook(path, settings)
        else:
            import xlsxwriter

            workbook = xlsxwriter.Workbook(str(path), settings)
        try:
            yield workbook
            close_workbook(workbook)
        except BaseException as error:
            _release_workbook(workbook, error)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _release_workbook(workbook: Any, error: BaseException) -> None:
    """What a failed xlsxwriter write leaves open: each sheet's files (constant_memory's row
    data, the part being written), and what the failed frames held (the zip being written to
    the output, a part's writer and its file), found in the error's traceback."""
    import io
    import zipfile

    def close(value: Any) -> None:
        if isinstance(value, zipfile.ZipFile | io.IOBase):
            with contextlib.suppress(Exception):
                value.close()  # a zip's end record fails too: its file is closed anyway

    for sheet in workbook.worksheets():
        close(getattr(sheet, "row_data_fh", None))
        close(getattr(sheet, "fh", None))
    close(getattr(workbook, "fh", None))
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        tb = found.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                close(value)
                close(getattr(value, "fh", None))  # an xlsxwriter part's writer
            tb = tb.tb_next
        found = found.__cause__ or found.__context__


# streamed files


def open_new(path: Path, encoding: str = "utf-8", newline: str | None = None) -> IO[str]:
    """A new file, written line by line as things happen (OutputExists if it is there)."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY, 0o666)
    except FileExistsError:
        raise OutputExists(f"{path}: exists (left untouched); {OVERWRITE_HINT}") from None
    return os.fdopen(handle, "w", encoding=encoding, newline=newline)


# CSV

# What a spreadsheet runs as a formula when a cell starts with it: the signs, and a tab or a
# carriage return before one.
FORMULA_SIGNS = "=+-@"
FORMULA_START = (*FORMULA_SIGNS, "\t", "\r")
PHONE_LIKE = re.compile(r"\+[0-9][0-9 ().\-]*")
# Apostrophes, then a formula's start: how `formula_safe` marks a value (the reader's pattern).
FORMULA_MARKED = re.compile("'+[" + re.escape("".join(FORMULA_START)) + "]")


# Characters a terminal acts on instead of showing: the C0 and C1 controls and DEL (ESC and CSI
# start the sequences that clear the screen, move the cursor or set the window title; CR and
# backspace overwrite what was shown), the line and paragraph separators, and the bidirectional
# embeddings, overrides and isolates that show text in another order than it is stored. Every
# file a person reads (CSV, xlsx, HTML, JSON) shows them as the terminal does: visibly.
TERMINAL_UNSAFE = (
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_VISIBLE = str.maketrans(
    {chr(c): f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in TERMINAL_UNSAFE}
)
# In JSON, as the escapes JSON itself has: a reader gets the value back exactly. (JSON escapes
# the C0 controls in strings itself; one outside a string is the layout's line end.)
_JSON_VISIBLE = str.maketrans({chr(c): f"\\u{c:04x}" for c in TERMINAL_UNSAFE if c >= 0x20})


def visible(text: str) -> str:
    """`text` with every character a terminal would act on written out visibly (ESC as `\\x1b`,
    U+202E as `\\u202e`): a name from a file or from CHeKT can neither repaint a screen nor
    disguise a line, in the terminal or in any file the tool writes."""
    return text.translate(_VISIBLE)


def visible_value(value: Any) -> Any:
    """A Jinja2 `finalize`: every text a page shows written visibly (`visible`) before it is
    HTML-escaped; markup the template made itself is left as it is."""
    from markupsafe import Markup

    return visible(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def json_text(body: Any, indent: int | None = 2) -> str:
    """JSON for a file, UTF-8 as it is, but with every character of `TERMINAL_UNSAFE` as a
    `\\u` escape (JSON itself escapes only the C0 controls): shown visibly, read back exactly."""
    return json.dumps(body, indent=indent, ensure_ascii=False).translate(_JSON_VISIBLE) + "\n"


def json_value(value: Any, default: Any = None) -> str:
    """`json_text` on one line, without its line end (a value in a cell, a journal's record)."""
    return json.dumps(value, ensure_ascii=False, default=default).translate(_JSON_VISIBLE)


def new_workbook(path: Path | str, options: dict[str, Any] | None = None) -> Any:
    """An xlsxwriter workbook whose sheets write every text cell and comment visibly
    (`visible`), as every workbook the tool writes for a person does. Machine data (an export's
    snapshot sheet) goes in a sheet added with `worksheet_class=xlsxwriter.worksheet.Worksheet`.
    """
    import xlsxwriter
    from xlsxwriter.worksheet import Worksheet

    class VisibleWorksheet(Worksheet):
        def write_string(self, row: Any, col: Any, *args: Any) -> Any:
            if isinstance(row, str):  # "A1" notation: the text is the first of args
                return super().write_string(row, visible(col), *args)
            string, *rest = args
            return super().write_string(row, col, visible(string), *rest)

        def write_comment(self, row: Any, col: Any, *args: Any) -> Any:
            def lines(text: str) -> str:
                return "\n".join(map(visible, text.split("\n")))

            if isinstance(row, str):
                return super().write_comment(row, lines(col), *args)
            comment, *rest = args
            return super().write_comment(row, col, lines(comment), *rest)

    class VisibleWorkbook(xlsxwriter.Workbook):
        worksheet_class = VisibleWorksheet

    return VisibleWorkbook(str(path), options or {})


def write_table_rows(sheet: Any, rows: Iterable[Iterable[Any]], first: int = 1) -> None:
    """Rows below a header, from the sheet's row `first`: an int as a number cell, anything
    else as text."""
    for line, values in enumerate(rows, start=first):
        for col, value in enumerate(values):
            if isinstance(value, int):
                sheet.write_number(line, col, value)
            else:
                sheet.write_string(line, col, str(value))


def formula_safe(value: str) -> str:
    """Shown as text by a spreadsheet, never run as a formula; `spreadsheet.unquote_formula`
    undoes it. A value that itself begins with the apostrophe marker gets one more, so it
    survives the round trip. A phone number such as +12025550143 is left as it is."""
    formula = value.startswith(FORMULA_START) and not PHONE_LIKE.fullmatch(value)
    return "'" + value if formula or FORMULA_MARKED.match(value) else value


class CsvWriter:
    """csv.writer for every CSV the tool writes: UTF-8 with a BOM (so Excel shows accents), text
    cells with control characters written visibly (`visible`) and made formula-safe."""

    ENCODING = "utf-8-sig"

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, values: Iterable[Any]) -> None:
        self._writer.writerow(
            [
                formula_safe(visible(v)) if isinstance(v, str) else ("" if v is None else v)
                for v in values
            ]
        )

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)


def write_csv(
    path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]], overwrite: bool = False
) -> None:
    """A whole CSV file, formula-safe, written to a temporary name and renamed into place."""
    with open_replacing(path, overwrite, CsvWriter.ENCODING, newline="") as handle:
        writer = CsvWriter(handle)
        writer.writerow(header)
        writer.writerows(rows)


# the CLI's check of a command's outputs, all at once


RUNS_FOLDER = "bulk-contacts-runs"  # where apply and rollback make a folder per run, by default
# What to do when the run folder cannot be made: the other place the files can go.
RUN_FOLDER_HINT = (
    "run the command from a folder you can write in, or name the results file with --results "
    "FILE (its journal is written beside it)"
)


def run_folder_name(kind: str, attempt: int = 1) -> str:
    """A run folder's name: `<UTC time>-<kind>`, with `-2`, `-3`... when that name is taken."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{kind}" if attempt == 1 else f"{stamp}-{kind}-{attempt}"


@dataclass(frozen=True)
class Output:
    """A file a command will write: the option that names it, its path, the suffixes its
    writer knows, and `check_output`'s mode (or "folder": a folder the command creates), and
    what to do when it cannot be written (`hint`)."""

    option: str
    path: Path
    suffixes: tuple[str, ...]
    mode: str = "replace"
    hint: str = ""


def check_outputs(wanted: Iterable[Output], overwrite: bool, reading: Path | None = None) -> None:
    """Every output of a command, before any work: each can be written, no two are the same
    file, and none is the file the command reads. Raises InputError (one line) at the first
    that fails."""
    seen: dict[str, str] = {}
    read = _identity(reading) if reading is not None else None
    for output in wanted:
        if output.mode == "folder":
            try:
                check_new_folder(output.path, f"{output.option} {output.path}")
            except InputError as error:
                if not output.hint:
                    raise
                raise InputError(f"{error}; {output.hint}") from None
            continue
        key = _identity(output.path)
        if key == read:
            raise InputError(
                f"{output.option} {output.path}: is the file being read; write to another file"
            )
        if key in seen:
            raise InputError(
                f"{output.option} {output.path}: named twice (also as {seen[key]}); give each "
                f"output its own file"
            )
        seen[key] = output.option
        check_output(
            output.path, output.option, output.suffixes, overwrite=overwrite, mode=output.mode
        )


def files_beside(results: Path) -> tuple[Path, Path]:
    """The failed rows and the journal written beside a --results file."""
    return (
        results.with_name(results.stem + "-failed-rows.csv"),
        results.with_name(results.stem + "-journal.jsonl"),
    )


def run_outputs(results: Path | None, journal: Path | None, kind: str) -> list[Output]:
    """What an apply or rollback writes: a --results file (and the failed rows beside it),
    replaced only with --overwrite; a journal (--journal, or beside --results), added to when
    it exists (its content is checked by `journal.check_appendable`), never replaced; or by
    default a new run folder under bulk-contacts-runs/, which must be creatable."""
    wanted = []
    if results is not None:
        failed_rows, journal_beside = files_beside(results)
        wanted += [
            Output("--results", results, SHEET_SUFFIXES),
            Output("failed rows of --results", failed_rows, (".csv",)),
        ]
        journal = journal or journal_beside
    else:
        # named as it would be made now (`apply.new_run_folder`), so the user sees where
        folder = Path(RUNS_FOLDER).absolute() / run_folder_name(kind)
        wanted.append(Output("cannot create the run folder", folder, (), "folder", RUN_FOLDER_HINT))
    if journal is not None:
        wanted.append(Output("--journal", journal, LINES_SUFFIXES, "append"))
    return wanted


def check_new_folder(folder: Path, what: str) -> None:
    """A folder the command will create (a run folder): its nearest existing ancestor must be a
    folder a file can be created in."""
    folder = folder.absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    check_folder(existing, what)


def discard(*paths: Path) -> None:
    """Remove files that `--overwrite` replaces with files written line by line (results,
    failed rows): the old ones go when the run starts."""
    for path in paths:
        path.unlink(missing_ok=True)


def _identity(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))
