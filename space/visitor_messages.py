"""What a visitor of the Space reads when something fails: one plain sentence saying what went wrong and what to do.

lead_hub's messages are written for the command line: they may name Python classes (``ArchiveLimits.max_files``),
the server's working folder, environment variables (``HF_TOKEN``, ``HF_HUB_OFFLINE``), CLI flags or "run the same
command again". A visitor can act on none of these. Errors of the network and of the Hub get a sentence of their
own; the input errors of lead_hub and of the Space (a bad zip, an unknown split, a field out of range) keep their
wording, less the parts meant for a command line; anything unexpected becomes a sentence that names no exception
class (the server's log keeps the traceback).
"""

from __future__ import annotations

import re

from lead_hub import metrics as metric_registry
from lead_hub.hub import HubAuthError, HubError, HubNetworkError
from lead_hub.network import HubUnreachableError
from lead_hub.public_names import redact_paths

_ENVIRONMENT_VARIABLE = re.compile(r"\b(?:HF|HUGGINGFACE|LEAD_HUB|GRADIO|XDG|TORCH|OMP|CUDA)_[A-Z0-9_]+\b")
_COMMAND_LINE = re.compile(r"`[^`]*`|(?<!\w)--[a-z][\w-]*|\bcommand\b|\bHF cache\b|\blocal cache\b", re.IGNORECASE)
_CLASS_REFERENCE = re.compile(r"\s*\((?:[A-Z]\w*\.)+\w+\)|;\s*(?:[A-Z]\w*\.)+\w+(?=\))"
                               r"|\b(?:[A-Z][a-z0-9]+)+(?:Error|Exception|Warning):\s*")
_SERVER_FOLDER = re.compile(r"\s*\(in [^()]*\)")
_CLAUSE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[;.])\s+(?=\S)")
_HUB_DATASET = re.compile(r"^cannot open dataset '([^']+)'")
SAFE_TO_PUBLISH_AGAIN = "publishing twice adds no duplicate rows"


def ranking_failure(error: BaseException) -> str:
    """One sentence for a ranking that failed with ``error``.

    Parameters
    ----------
    error
        What the ranking raised: a refused input (``ValueError``, ``LookupError``: the Space's form checks, a bad
        zip, a dataset without a split), the Hub out of reach, or anything else.

    Returns
    -------
    str
        A sentence that starts with a capital, ends with a full stop, names no Python class, folder of the server or
        environment variable, and says what to do.

    Examples
    --------
    >>> ranking_failure(ValueError("Split: 'x y' is not a split name; use a name such as train or test"))
    "Split: 'x y' is not a split name; use a name such as train or test."
    >>> ranking_failure(RuntimeError("CUDA error"))
    'The ranking failed on the server (CUDA error); press Rank models to try again, or rank fewer models or images.'
    """
    opened = _HUB_DATASET.match(str(error))
    dataset = f"the dataset {opened.group(1)!r}" if opened else "the Hub"
    if isinstance(error, (HubUnreachableError, ConnectionError, TimeoutError)):
        return (f"The Hugging Face Hub could not be reached from this Space just now, so {dataset} could not be "
                "read; try again in a few minutes, or upload a zip of class folders and pick a shipped zoo.")
    if isinstance(error, ValueError) and opened:
        return (f"The dataset {opened.group(1)!r} could not be opened from the Hub: check its id (owner/name), that "
                "it is public and not gated, and the split, or upload a zip of class folders.")
    if isinstance(error, KeyError) and error.args:
        return plain_sentence(str(error.args[0]))  # str() of a KeyError quotes its message
    if isinstance(error, (ValueError, LookupError, FileNotFoundError)):
        return plain_sentence(str(error))
    return (f"The ranking failed on the server ({_first_clause(error)}); press Rank models to try again, or rank "
            "fewer models or images.")


def ranking_warning(warning: str, primary_metric: str) -> str:
    """One sentence for a warning of a ranking that ended (``Leaderboard.warnings``: a metric that cannot rank the
    models, with what to do), starting with "Warning:"; when the metric is not the one ranked by, the sentence adds
    that the ranking is not affected (its column only cannot tell the models apart).

    Parameters
    ----------
    warning
        One of the leaderboard's warnings, as the command line prints it.
    primary_metric
        The metric the leaderboard is ranked by.

    Returns
    -------
    str
        A sentence as :func:`plain_sentence` gives.

    Examples
    --------
    >>> ranking_warning("hscore cannot rank 2 models that all score 9 (a, b): it saturates. Use more samples per "
    ...                 "class to tell them apart.", "lead")
    'Warning: hscore cannot rank 2 models that all score 9 (a, b): it saturates; use more samples per class to tell \
them apart; the ranking by lead is not affected.'
    """
    sentence = plain_sentence(f"Warning: {warning}")
    metric = warning.split(" ", 1)[0]
    if metric != primary_metric and metric in metric_registry.available():
        sentence = f"{sentence.removesuffix('.')}; the ranking by {primary_metric} is not affected."
    return sentence


def publishing_failure(error: BaseException, repo_id: str) -> str:
    """One sentence for a publication of the leaderboard to ``repo_id`` that failed with ``error``.

    Parameters
    ----------
    error
        What publishing raised: a refused token (:class:`~lead_hub.hub.HubAuthError`), the Hub out of reach, a
        bad repository id, or anything else.
    repo_id
        The dataset repository the visitor typed.

    Returns
    -------
    str
        A sentence as :func:`ranking_failure` gives, with the Space's own remedies (sign in, press Publish again).

    Examples
    --------
    >>> failed = HubNetworkError("publishing to a/b: timed out. Check the network, then run the same command again")
    >>> publishing_failure(failed, "a/b").split(";")[0]
    'The Hub could not be reached, so nothing was published to a/b'
    """
    if isinstance(error, HubAuthError):
        return (f"The Hub did not accept your sign-in for {repo_id}: sign in with Hugging Face again (run locally: "
                "paste a token with write access), and publish to a dataset repository of your own namespace.")
    if isinstance(error, (HubNetworkError, HubUnreachableError, ConnectionError, TimeoutError)):
        return (f"The Hub could not be reached, so nothing was published to {repo_id}; press Publish again in a "
                f"minute ({SAFE_TO_PUBLISH_AGAIN}).")
    if isinstance(error, HubError) and error.retryable:
        return (f"The Hub failed to save the leaderboard to {repo_id} ({_first_clause(error)}); press Publish again "
                f"in a minute ({SAFE_TO_PUBLISH_AGAIN}).")
    if isinstance(error, (HubError, ValueError)):
        return plain_sentence(str(error))
    return (f"Publishing to {repo_id} failed on the server ({_first_clause(error)}); press Publish again in a "
            f"minute ({SAFE_TO_PUBLISH_AGAIN}).")


def plain_sentence(message: str) -> str:
    """``message`` as one sentence for a visitor: absolute paths by their last component; the clauses that name an
    environment variable, a command line or a cache of the server left out; class references and the server's
    working folder removed; clauses joined by semicolons, a capital first and a full stop last.

    Examples
    --------
    >>> plain_sentence("/srv/upload.zip holds 6 entries, more than 5 (ArchiveLimits.max_files); sample fewer. "
    ...                "Set HF_TOKEN for a gated dataset")
    'upload.zip holds 6 entries, more than 5; sample fewer.'
    """
    text = _CLASS_REFERENCE.sub(" ", _SERVER_FOLDER.sub("", redact_paths(message))).strip().replace(" )", ")")
    clauses = [clause.strip().rstrip(";.").strip() for clause in _CLAUSE_END.split(text)]
    kept = [clause for clause in clauses if clause and not _ENVIRONMENT_VARIABLE.search(clause)
            and not _COMMAND_LINE.search(clause)]
    kept = [re.sub(r",? (?:and|or) (?:the network )?$", "", re.sub(r"\s{2,}", " ", clause)) for clause in kept]
    if not kept:
        return "The request could not be carried out; check the form's fields and press the button again."
    sentence = "; ".join([kept[0], *(_with_first_word(clause, str.lower) for clause in kept[1:])])
    return _with_first_word(sentence, str.upper) + "."


def _with_first_word(text: str, case) -> str:
    """``text`` with ``case`` applied to its first letter when its first word is a plain word (a file name or an
    id such as ``upload.zip`` or ``IMG_1.png`` stays as typed)."""
    first = text.split(" ", 1)[0].rstrip(":,")
    return case(text[:1]) + text[1:] if first.isalpha() and first[1:].islower() else text


def _first_clause(error: BaseException) -> str:
    """The start of ``error``'s message, without paths or class names, short enough for a parenthesis."""
    text = _CLASS_REFERENCE.sub(" ", redact_paths(str(error))).strip()
    first = re.split(r"[;\n]|\.\s", text, maxsplit=1)[0].strip().rstrip(".")
    return (first[:117] + "...") if len(first) > 120 else (first or "no message")
