"""Errors the CLI turns into one clear line and a non-zero exit (never a traceback)."""

from __future__ import annotations


class VirNucProError(Exception):
    """Base class: the message is shown to the user as is; ``exit_code`` is the process status."""

    exit_code = 1


class InputError(VirNucProError):
    """Bad user input (FASTA, TSV, HDF5): the message names the file and, where known, the record."""

    exit_code = 2


class ModelError(VirNucProError):
    """A model file or folder that is missing, unsafe, or does not match its architecture."""

    exit_code = 3


class NumericError(VirNucProError):
    """NaN/Inf found in computed embeddings or scores; the message names the ids."""

    exit_code = 4


class Interrupted(VirNucProError):
    """The run was stopped by SIGTERM/SIGINT after leaving every file consistent."""

    exit_code = 143
