"""Errors a user can cause. Each message names the problem and the fix; the CLI prints it in one line."""


class LuoxiaError(Exception):
    """Base class for every error caused by input, files or parameters (not by our bugs)."""


class ModelNotFoundError(LuoxiaError):
    """A model name, file or directory that does not exist."""


class CorruptFileError(LuoxiaError):
    """A file that exists but cannot be read as the format it claims to be."""


class UnsupportedModelError(LuoxiaError):
    """A readable model of an architecture or tensor type we do not implement."""


class InvalidParameterError(LuoxiaError, ValueError):
    """A parameter outside its allowed range."""


class PromptTooLongError(LuoxiaError):
    """A prompt that does not fit the model's context window."""


class UserFileError(LuoxiaError):
    """A file the user named that cannot be read or written."""


class InputEncodingError(LuoxiaError):
    """Input that is not valid UTF-8 text."""


class ImageTooLargeError(LuoxiaError):
    """An image (or a batch of them) too large to decode or hold in memory."""
