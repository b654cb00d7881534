"""Named queries, one module per table. Each takes the unit of work (``AsyncSession``) so callers
decide the transaction; finders are named ``find_…`` for what they find.

Claims are ``INSERT … ON CONFLICT DO NOTHING``: the database, not process memory, decides who was
first, which holds across retries, restarts and replicas.

Which module holds which table (``bridge.db.models``):

- ``thread_link``: ``thread_link`` (``ThreadLink``), a Slack thread and its chat; also finds links
  by a posted message and by pending output.
- ``inbound_message``: ``inbound_message`` (``InboundMessage``), a person's messages relayed.
- ``stream_cursor``: ``stream_cursor`` (``StreamCursor``), where a chat's stream resumes.
- ``seen_event``: ``seen_event`` (``SeenEvent``), Slack events and requests taken in.
- ``slack_message``: ``slack_message`` (``SlackMessage``), the bridge's posts by slot.
- ``outbox_text``: ``outbox`` (``OutboxEntry``), texts slots must show.
- ``outbox_reaction``: ``outbox_reaction`` (``OutboxReaction``), reactions the bridge wishes.
- ``user_link``: ``user_link`` (``UserLink``), linked Coder accounts.
- ``link_attempt``: ``link_attempt`` (``LinkAttempt``), ``/coder link`` token checks.
- ``agent_file``: ``agent_file`` (``AgentFile``), files the agent attached, on their way into threads.
- ``home_viewer``: ``home_viewer`` (``HomeViewer``), who opened the App Home tab (replicas).
- ``lease``: ``lease`` (``Lease``), work one replica of several does (PostgreSQL only).
- ``aisdk_chat``: ``legacy_chat`` (``AisdkChat``), chats of Coder's 2025 AI-SDK API.
- ``aisdk_follow_up``: ``legacy_follow_up`` (``AisdkFollowUp``), their held follow-ups.
- ``replica``: ``replica`` (``Replica``), the bridge processes sharing the database.
- ``slack_pace``: ``slack_pace`` (``SlackPace``), Slack budgets learned from Slack's answers.
- ``slack_installation``: ``slack_installation`` (``SlackInstallation``), the app's installations
  (OAuth distribution), and ``slack_oauth_state`` (``SlackOAuthState``), OAuth states in flight.

Callers use ``from bridge.db import repo`` and ``repo.<name>``: every public name is here.
"""

from bridge.db.repo.agent_file import (
    AGENT_FILE_DONE,
    AGENT_FILE_PENDING,
    AGENT_FILE_UPLOADING,
    add_agent_file,
    find_unfinished_agent_files,
    set_agent_file_state,
)
from bridge.db.repo.aisdk_chat import (
    delete_aisdk_chat,
    find_aisdk_chat,
    find_all_aisdk_chats,
    save_aisdk_chat,
)
from bridge.db.repo.aisdk_follow_up import (
    find_aisdk_follow_ups,
    hold_aisdk_follow_up,
    release_aisdk_follow_up,
)
from bridge.db.repo.home_viewer import is_home_viewer, note_home_viewer
from bridge.db.repo.inbound_message import (
    claim_inbound,
    find_inbound,
    find_queued_by_text,
    find_queued_inbound,
    find_turn_message,
    forget_after,
    record_inbound,
    release_inbound,
    replace_queued,
    unqueue,
)
from bridge.db.repo.lease import (
    Acquired,
    acquire_lease,
    expire_leases,
    find_expired_leases,
    find_unleased_output,
    holds_lease,
    release_lease,
    renew_leases,
)
from bridge.db.repo.link_attempt import add_link_attempt, find_link_attempts_since
from bridge.db.repo.outbox_reaction import (
    StoredWish,
    WishToStore,
    drop_reactions,
    find_pending_reactions,
    settle_reaction,
    stage_reactions,
)
from bridge.db.repo.outbox_text import (
    OUTBOX_FAILED,
    OUTBOX_PENDING,
    TextToStore,
    fail_texts,
    find_pending_texts,
    settle_text,
    stage_texts,
)
from bridge.db.repo.replica import beat_replica, count_live_replicas, remove_replica
from bridge.db.repo.seen_event import (
    RecordedEvent,
    claim_event,
    claim_orphaned_events,
    claim_request,
    find_unfinished_events,
    finish_event,
    prune_events,
    tag_event,
)
from bridge.db.repo.slack_installation import (
    SLACK_BOT_COLUMNS,
    add_oauth_state,
    consume_oauth_state,
    count_slack_bots,
    delete_slack_installations,
    find_all_slack_installations,
    find_slack_bot,
    find_slack_installation,
    forget_slack_bot,
    replace_slack_ciphertext,
    save_slack_bot,
    save_slack_installation,
)
from bridge.db.repo.slack_message import find_posted_messages, rename_slot, save_slot
from bridge.db.repo.slack_pace import StoredPace, find_paces, save_pace
from bridge.db.repo.stream_cursor import find_cursor, save_cursor
from bridge.db.repo.thread_link import (
    BUSY_PHASES,
    FAILED_PHASE,
    FOLLOWED_PHASES,
    STARTING_PHASE,
    WAITING_PHASE,
    attach_chat,
    choose_title,
    claim_thread,
    find_link,
    find_link_by_chat,
    find_link_by_message,
    find_link_by_thread,
    find_links_by_chat,
    find_links_of_requester,
    find_links_to_follow,
    find_links_with_pending_output,
    mark_busy,
    mark_failed,
    reclaim_thread,
    save_shown_diff,
    save_shown_title,
    set_archived,
    set_status,
)
from bridge.db.repo.user_link import (
    delete_user_link,
    find_all_user_links,
    find_user_link,
    find_user_links_of_coder_user,
    mark_user_link_broken,
    replace_user_token,
    save_user_link,
)

__all__ = [
    "AGENT_FILE_DONE",
    "AGENT_FILE_PENDING",
    "AGENT_FILE_UPLOADING",
    "BUSY_PHASES",
    "FAILED_PHASE",
    "FOLLOWED_PHASES",
    "OUTBOX_FAILED",
    "OUTBOX_PENDING",
    "SLACK_BOT_COLUMNS",
    "STARTING_PHASE",
    "WAITING_PHASE",
    "Acquired",
    "RecordedEvent",
    "StoredPace",
    "StoredWish",
    "TextToStore",
    "WishToStore",
    "acquire_lease",
    "add_agent_file",
    "add_link_attempt",
    "add_oauth_state",
    "attach_chat",
    "beat_replica",
    "choose_title",
    "claim_event",
    "claim_inbound",
    "claim_orphaned_events",
    "claim_request",
    "claim_thread",
    "consume_oauth_state",
    "count_live_replicas",
    "count_slack_bots",
    "delete_aisdk_chat",
    "delete_slack_installations",
    "delete_user_link",
    "drop_reactions",
    "expire_leases",
    "fail_texts",
    "find_aisdk_chat",
    "find_aisdk_follow_ups",
    "find_all_aisdk_chats",
    "find_all_slack_installations",
    "find_all_user_links",
    "find_cursor",
    "find_expired_leases",
    "find_inbound",
    "find_link",
    "find_link_attempts_since",
    "find_link_by_chat",
    "find_link_by_message",
    "find_link_by_thread",
    "find_links_by_chat",
    "find_links_of_requester",
    "find_links_to_follow",
    "find_links_with_pending_output",
    "find_paces",
    "find_pending_reactions",
    "find_pending_texts",
    "find_posted_messages",
    "find_queued_by_text",
    "find_queued_inbound",
    "find_slack_bot",
    "find_slack_installation",
    "find_turn_message",
    "find_unfinished_agent_files",
    "find_unfinished_events",
    "find_unleased_output",
    "find_user_link",
    "find_user_links_of_coder_user",
    "finish_event",
    "forget_after",
    "forget_slack_bot",
    "hold_aisdk_follow_up",
    "holds_lease",
    "is_home_viewer",
    "mark_busy",
    "mark_failed",
    "mark_user_link_broken",
    "note_home_viewer",
    "prune_events",
    "reclaim_thread",
    "record_inbound",
    "release_aisdk_follow_up",
    "release_inbound",
    "release_lease",
    "remove_replica",
    "rename_slot",
    "renew_leases",
    "replace_queued",
    "replace_slack_ciphertext",
    "replace_user_token",
    "save_aisdk_chat",
    "save_cursor",
    "save_pace",
    "save_shown_diff",
    "save_shown_title",
    "save_slack_bot",
    "save_slack_installation",
    "save_slot",
    "save_user_link",
    "set_agent_file_state",
    "set_archived",
    "set_status",
    "settle_reaction",
    "settle_text",
    "stage_reactions",
    "stage_texts",
    "tag_event",
    "unqueue",
]
