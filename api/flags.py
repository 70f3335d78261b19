"""Mesos flag value formats (contract 7.10): durations such as `15secs`, `10mins`; and Mesos's
ways of giving flags (environment variables, bare and negated booleans, `file://` values)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

# Listening everywhere names no address of its own (libprocess then advertises another).
UNSPECIFIED_ADDRESSES = ("0.0.0.0", "::")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ip_flag(value: str | None, flag: str) -> str | None:
    """An IP-valued flag (such as --advertise_ip); ValueError names the flag."""
    if value is not None and not is_ip(value):
        raise ValueError(f"Failed to load flag '{flag}': '{value}' is not an IP address")
    return value


ENVIRONMENT_PREFIX = "MESOS_"
FILE_PREFIX = "file://"


class FlagLoadError(ValueError):
    """A flag that cannot be loaded (an unreadable `file://`, a bad boolean)."""


def mesos_argv(
    argv: Sequence[str], environ: Mapping[str, str], parser: argparse.ArgumentParser
) -> list[str]:
    """`argv` for `parser` with Mesos's flag conventions (stout's) applied:

    - a flag may come from the environment as MESOS_<NAME> (`MESOS_WORK_DIR=/var/lib/mesos`);
      the command line wins over it;
    - a boolean flag may be given bare (`--strict`) or negated (`--no-strict`);
    - a value `file:///path` is read from that file (trailing whitespace dropped).
    """
    flags = _long_flags(parser)
    given: list[str] = []
    switches: dict[str, bool] = {}  # store_true flags: the last word on each wins

    def add(name: str, action: argparse.Action, value: str) -> None:
        value = _loaded(name, value)
        if not _is_boolean(action):
            given.append(f"--{name}={value}")
        elif action.nargs == 0:
            switches[name] = _truth(name, value)
        else:
            given.append(f"--{name}={'true' if _truth(name, value) else 'false'}")

    for flag_name, flag_action in flags.items():
        from_environment = environ.get(ENVIRONMENT_PREFIX + flag_name.upper())
        if from_environment is not None:
            add(flag_name, flag_action, from_environment)
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            given += words[index - 1 :]
            break
        name, sep, value = word[2:].partition("=") if word.startswith("--") else ("", "", "")
        action = flags.get(name)
        negated = flags.get(name[3:]) if name.startswith("no-") and not sep else None
        if negated is not None and _is_boolean(negated):
            add(name[3:], negated, "false")
        elif action is None:
            given.append(word)  # a positional, or a flag argparse will name as unknown
        elif sep:
            add(name, action, value)
        elif _is_boolean(action):
            add(name, action, "true")
        elif index < len(words):
            add(name, action, words[index])
            index += 1
        else:
            given.append(word)  # argparse says it needs a value
    return [f"--{name}" for name, on in switches.items() if on] + given


def _long_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option[2:]: action
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest != "help"
    }


def _is_boolean(action: argparse.Action) -> bool:
    return action.nargs == 0 or action.default in ("true", "false")


def _loaded(name: str, value: str) -> str:
    """The value itself, or the contents of the file a `file://` value names."""
    if not value.startswith(FILE_PREFIX):
        return value
    path = value[len(FILE_PREFIX) :]
    try:
        return Path(path).read_text().rstrip()
    except OSError as error:
        raise FlagLoadError(
            f"Failed to load flag '{name}': cannot read '{path}': {error.strerror}"
        ) from None


def _truth(name: str, value: str) -> bool:
    if value not in ("true", "false", "1", "0"):
        raise FlagLoadError(f"Failed to load flag '{name}': expected true or false, got '{value}'")
    return value in ("true", "1")


LOGGING_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Mesos's logging flags, for the master and the agent."""
    parser.add_argument("--logging_level", default="INFO", help="INFO | WARNING | ERROR")
    parser.add_argument(
        "--log_dir",
        default=None,
        help="also log to <log_dir>/meseta-<daemon>.log (unset: stderr only)",
    )
    parser.add_argument(
        "--quiet",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="do not log to stderr",
    )
    parser.add_argument(
        "--external_log_file",
        default=None,
        help=(
            "a log file written by someone else (e.g. stderr captured by a supervisor),"
            " served as the daemon's log in the web UI and /files instead of --log_dir's"
        ),
    )


def configure_logging(
    level: str, log_dir: str | None, daemon: str, *, quiet: bool = False
) -> Path | None:
    """Log to stderr (unless `quiet`), and to `<log_dir>/meseta-<daemon>.log` when a directory
    is given (its path is returned); FlagLoadError for an unknown level or an unusable
    directory."""
    if level not in LOGGING_LEVELS:
        choices = " | ".join(LOGGING_LEVELS)
        raise FlagLoadError(f"Failed to load flag 'logging_level': '{level}' is not {choices}")
    handlers: list[logging.Handler] = [] if quiet else [logging.StreamHandler()]
    path = None
    if log_dir is not None:
        path = log_file(log_dir, daemon)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path))
        except OSError as error:
            raise FlagLoadError(
                f"Failed to load flag 'log_dir': cannot write '{path}': {error.strerror}"
            ) from None
    if not handlers:  # else logging's last resort prints warnings to stderr after all
        handlers.append(logging.NullHandler())
    logging.basicConfig(level=LOGGING_LEVELS[level], format=LOG_FORMAT, handlers=handlers)
    return path


def log_file(log_dir: str, daemon: str) -> Path:
    """Where `--log_dir` puts a daemon's log."""
    return Path(log_dir) / f"meseta-{daemon}.log"


def served_log(log_dir: str | None, external_log_file: str | None, daemon: str) -> Path | None:
    """The log `/master/log` or `/slave/log` serves: as in Mesos, `--external_log_file` when
    given, else the file `--log_dir` writes, else none."""
    if external_log_file is not None:
        return Path(external_log_file)
    return None if log_dir is None else log_file(log_dir, daemon)
