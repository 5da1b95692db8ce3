"""A token file that a badge-reader program writes: the file's content is the badge now inserted.

The program writes the badge ID into the file when a badge goes in, and deletes the file (or empties it)
when the badge comes out. Best is an atomic replace (write ``.badge.tmp``, rename it over ``badge``);
writing in place works too. The directory is watched with inotify where the kernel has it, so a change
is seen at once; elsewhere (illumos) the file is polled, and a change counts once it has held still for
a moment, so a half-written file is not taken for a badge.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import stat
from pathlib import Path

from wayray.client.tokens import inotify
from wayray.client.tokens.events import MAX_TOKEN_BYTES, InvalidToken, TokenKind, validate_token
from wayray.client.tokens.source import TokenSource
from wayray.common.errors import WayRayError

log = logging.getLogger("wayray.client.tokens")

#: Directory events that may change what the file says (modifications in place count once the writer
#: closes the file: IN_CLOSE_WRITE, so a truncated-then-written file is not seen half way).
_DIR_MASK = (
    inotify.IN_CLOSE_WRITE
    | inotify.IN_MOVED_TO
    | inotify.IN_MOVED_FROM
    | inotify.IN_DELETE
    | inotify.IN_CREATE
    | inotify.IN_DELETE_SELF
    | inotify.IN_MOVE_SELF
    | inotify.IN_ONLYDIR
)
#: When polling, a changed file counts once it has not changed for this long (seconds).
SETTLE_TIME = 0.02
_DIR_GONE = inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_IGNORED | inotify.IN_UNMOUNT


class FileWatch(enum.StrEnum):
    """How a token file is watched."""

    #: inotify where the kernel has it, else polling.
    AUTO = "auto"
    INOTIFY = "inotify"
    POLL = "poll"


#: What stat says about the file, to notice changes when polling (None: no file).
_Signature = tuple[int, int, int, int, int] | None


class FileTokenSource(TokenSource):
    """Presents the token in ``path`` while the file exists and is not empty.

    The directory must exist when the source starts and must not be writable by others (whoever can
    write the file can present any badge). A file with an unusable token (too long, whitespace, control
    characters) counts as no badge and is reported in the log, without its content.
    """

    def __init__(
        self,
        path: Path,
        kind: TokenKind = TokenKind.BADGE,
        *,
        watch: FileWatch = FileWatch.AUTO,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(f"token file {path}")
        self.path = Path(path)
        self.kind = kind
        self.watch = watch
        self.poll_interval = poll_interval
        self._problem = ""  # the last problem logged, so a lasting one is logged once
        self._warned_readable = False

    async def _produce(self) -> None:
        self._check_directory()
        use_inotify = self.watch is not FileWatch.POLL and inotify.available()
        if self.watch is FileWatch.INOTIFY and not use_inotify:
            raise WayRayError(f"{self.path}: cannot watch the token file: no inotify on this platform")
        if use_inotify:
            await self._watch_with_inotify()
        else:
            log.debug("%s: polling every %.2f s", self.description, self.poll_interval)
            await self._watch_by_polling()

    # --- watching -----------------------------------------------------------------------------------

    async def _watch_with_inotify(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = inotify.Inotify()
        readable = asyncio.Event()
        loop.add_reader(watcher.fileno(), readable.set)
        name = os.fsencode(self.path.name)
        try:
            while True:
                try:
                    wd = watcher.add_watch(self.path.parent, _DIR_MASK)
                except OSError as err:
                    # The directory went away (a reader program's runtime directory, say): no badge
                    # until it is back.
                    self._note_problem(f"cannot watch {self.path.parent}: {err.strerror}; waiting for it")
                    self._withdraw("token file's directory is gone")
                    self._set_ready()
                    await asyncio.sleep(self.poll_interval)
                    continue
                self._evaluate()
                self._set_ready()
                directory_gone = False
                while not directory_gone:
                    await readable.wait()
                    readable.clear()
                    for event in watcher.read():
                        if event.mask & inotify.IN_Q_OVERFLOW:
                            self._evaluate()
                        elif event.wd == wd and event.mask & _DIR_GONE:
                            directory_gone = True
                        elif event.wd == wd and event.name == name:
                            self._evaluate(just_created=event.mask == inotify.IN_CREATE)
                if directory_gone:
                    watcher.rm_watch(wd)
                    self._withdraw("token file's directory is gone")
        finally:
            loop.remove_reader(watcher.fileno())
            watcher.close()

    async def _watch_by_polling(self) -> None:
        seen = self._signature()
        self._evaluate()
        self._set_ready()
        while True:
            await asyncio.sleep(self.poll_interval)
            now = self._signature()
            if now == seen:
                continue
            while True:  # a writer may be midway: take the file once it holds still
                await asyncio.sleep(SETTLE_TIME)
                again = self._signature()
                if again == now:
                    break
                now = again
            seen = now
            self._evaluate()

    def _signature(self) -> _Signature:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    # --- reading ------------------------------------------------------------------------------------

    def _evaluate(self, *, just_created: bool = False) -> None:
        """Read the file and report what it says now."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            self._problem = ""
            self._withdraw("token file removed")
            return
        except OSError as err:
            self._note_problem(f"cannot read it: {err.strerror}")
            self._withdraw("token file unreadable")
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._note_problem("it is not a regular file")
                self._withdraw("token file unusable")
                return
            data = os.read(fd, MAX_TOKEN_BYTES + 256)
        except OSError as err:
            self._note_problem(f"cannot read it: {err.strerror}")
            self._withdraw("token file unreadable")
            return
        finally:
            os.close(fd)
        if not data.strip():
            if not just_created:  # a file just created is still being written: wait for its close
                self._problem = ""
                self._withdraw("token file emptied")
            return
        try:
            token = validate_token(data.decode("utf-8"))
        except (UnicodeDecodeError, InvalidToken) as err:
            why = "it is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else str(err)
            self._note_problem(f"ignored: {why}")
            self._withdraw("token file holds no usable token")
            return
        self._problem = ""
        if st.st_mode & 0o004 and not self._warned_readable:
            self._warned_readable = True
            log.warning("%s: every user on this kiosk can read the badge IDs in it: chmod o-r it", self.path)
        self._present(token, self.kind)

    def _note_problem(self, problem: str, level: int = logging.WARNING) -> None:
        if problem != self._problem:
            self._problem = problem
            log.log(level, "%s: %s", self.path, problem)

    def _check_directory(self) -> None:
        directory = self.path.parent
        try:
            st = directory.stat()
        except OSError as err:
            raise WayRayError(
                f"{directory}: cannot use it for the token file: {err.strerror}",
                hint="create it (for example with RuntimeDirectory= in the badge-reader program's "
                "systemd unit), or fix the token file's path",
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise WayRayError(f"{directory}: not a directory, so it cannot hold the token file")
        if st.st_mode & 0o002:
            raise WayRayError(
                f"{directory}: every user may write here (mode {stat.S_IMODE(st.st_mode):04o}), so anyone "
                "on this kiosk could present any badge",
                hint="use a directory only the badge-reader program (and wrclient) can write",
            )
