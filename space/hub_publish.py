"""Publish the Space's last leaderboard to the visitor's own Hub namespace, with the visitor's own token.

Which token: in a Space, only the visitor's OAuth token (from "Sign in with Hugging Face"); the Space's own
credentials (an ``HF_TOKEN`` secret of its owner) are never used for a visitor's push. Run locally, the token typed
into the password field, else whatever ``huggingface_hub`` finds on the machine (``HF_TOKEN``, ``hf auth login``).
The token is passed to :func:`lead_hub.hub.push_leaderboard` and nowhere else: never printed, logged, stored in
the page's state or written to a file, and it is masked out of any error message. A failure reads as one sentence
with the page's remedies (:func:`visitor_messages.publishing_failure`), never as a command to run again.
"""

from __future__ import annotations

from lead_hub.hub import push_leaderboard
from lead_hub.network import mask
from lead_hub.leaderboard import Leaderboard
from visitor_messages import publishing_failure


class PublishError(ValueError):
    """The push was refused or failed; the message says why and what to do, and never holds the token."""


def choose_token(*, in_space: bool, oauth_token: str | None, typed_token: str | None) -> str | None:
    """The token for a push (see the module docstring); None lets huggingface_hub resolve the local login."""
    if in_space:
        if not oauth_token:
            raise PublishError("Publishing needs your Hugging Face account: click 'Sign in with Hugging Face' above, "
                               "then publish again (the leaderboard goes to a dataset repo in your namespace)")
        return oauth_token
    return (typed_token or "").strip() or None


def publish(board: Leaderboard | None, repo_id: str, token: str | None) -> str:
    """Merge ``board`` into the dataset repo ``repo_id`` and return a markdown line with the commit or PR link."""
    if board is None or board.best_model is None:
        raise PublishError("Nothing to publish yet: run a ranking that scores at least one model first")
    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise PublishError("Repository: enter OWNER/NAME of a dataset repo in your namespace, e.g. "
                           "your-name/vision-leaderboard")
    try:
        result = push_leaderboard(board.table, board.provenance, repo_id, token=token)
    except Exception as error:  # noqa: BLE001 - every failure becomes one sentence, the token masked out of it
        # lead_hub.hub keeps the token out of its messages; masking again costs nothing and covers any library's.
        raise PublishError(mask(publishing_failure(error, repo_id), token)) from None
    link = result.pull_request_url or result.commit_url
    return (f"Published to [{result.repo_id}]({link}): {result.rows_added} rows added, {result.rows_replaced} "
            f"replaced, {result.rows_kept} kept.")
