"""The `luoxia` command line: `main.py` builds the parser, one module per command group does the work."""


def error_line(error: BaseException) -> str:
    """A user error as the one line the CLI prints: `luoxia: error: <message>`."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"luoxia: error: {message}"
