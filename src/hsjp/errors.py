"""Errors a user can act on.

Every problem with the user's input (files, annotations, configs, checkpoints) is raised as a
subclass of :class:`HsjpError` whose message is one line naming the file and record at fault. The
command line prints that line and exits with status 2 instead of showing a traceback.
"""


class HsjpError(Exception):
    """Base class: a problem with the user's input, explained in one line."""


class DataError(HsjpError):
    """An image or annotation file is missing, unreadable or not what it claims to be."""


class ConfigError(HsjpError):
    """A config file or command-line override is malformed or names an unknown field."""


class CheckpointError(HsjpError):
    """A weights file does not fit the network it is loaded into."""


class TrainingError(HsjpError):
    """Training went wrong in a way that continuing would hide (a non-finite loss)."""


class Interrupted(HsjpError):
    """A run was told to stop (SIGTERM: a scheduler's time limit or preemption, ``kill``) and saved where it stopped.

    ``main_process`` is false in a DDP run's other ranks: they stop quietly with exit code 0, since
    Lightning kills the main process as soon as one of them exits with another code.
    """

    def __init__(self, message: str, main_process: bool = True):
        super().__init__(message)
        self.main_process = main_process


def brief(e: BaseException, limit: int = 160) -> str:
    """A library's exception as ``Type: first sentence``, so it fits inside our one-line messages.

    Network and pickle errors run to many lines and paragraphs; cutting them mid-word reads as garbage.
    """
    text = (str(e).splitlines() or [""])[0].split(". ")[0].rstrip(".")
    if len(text) > limit:
        text = text[: limit - 3].rsplit(" ", 1)[0] + "..."
    return f"{type(e).__name__}: {text}"
