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
