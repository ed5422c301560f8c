"""Exception classes: every user-facing failure is a ScfanError whose message is one clear line."""


class ScfanError(Exception):
    """Base class for errors caused by bad input or configuration (reported without a traceback)."""


class InputFileError(ScfanError):
    """A file is missing, unreadable or malformed.

    The message names the file, the line or record, and what was expected.
    """

    def __init__(self, path, problem: str, *, line: int | None = None, record: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record!r}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.record = record


class ParamsError(ScfanError):
    """Pipeline parameters do not satisfy the schema."""


class ChromosomeNameError(ScfanError):
    """Chromosome names disagree between inputs."""


class OutputError(ScfanError):
    """An output location cannot be written."""
