"""``NAME=value`` command-line arguments (``--model NAME=model.pt``, ``--fragments SAMPLE=path``, ``--peaks TF=PATH``):
one parser, and one wording for its errors: the option, the argument as given, and the form expected."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scfan.errors import ScfanError


def named_error(option: str, item: str, expected: str) -> ScfanError:
    """The error for a malformed ``NAME=value`` argument: ``--option 'item': expected NAME=path``."""
    return ScfanError(f"{option} {item!r}: expected {expected}")


def split_named(item: str, option: str, expected: str = "NAME=path", *,
                default_name: Callable[[str], str] | None = None) -> tuple[str, str]:
    """``NAME=value`` → ``(NAME, value)``, each without surrounding spaces (the first ``=`` splits, so a value may
    hold more). Without ``=``: ``(default_name(item), item)`` where a default is given, else an error; an empty
    name or value is an error too (:func:`named_error`)."""
    name, sep, value = str(item).partition("=")
    if not sep:
        if default_name is None:
            raise named_error(option, item, expected)
        name, value = default_name(str(item)), str(item)
    name, value = name.strip(), value.strip()
    if not name or not value:
        raise named_error(option, item, expected)
    return name, value


def named_map(items: Iterable[str], option: str, expected: str = "NAME=path", *, what: str = "name",
              default_name: Callable[[str], str] | None = None) -> dict[str, str]:
    """``{NAME: value}`` of repeated ``NAME=value`` arguments, in the order given (:func:`split_named`); a name given
    twice is an error (``--option: <what> 'NAME' given twice``)."""
    out: dict[str, str] = {}
    for item in items:
        name, value = split_named(item, option, expected, default_name=default_name)
        if name in out:
            raise ScfanError(f"{option}: {what} {name!r} given twice")
        out[name] = value
    return out
