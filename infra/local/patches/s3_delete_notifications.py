"""S3 delete notifications as S3 sends them.

`S3Backend.delete_object(self, bucket_name, key_name, version_id, bypass)` on a
versioned bucket notifies nothing for a delete marker it creates, and ObjectRemoved for
a version only when it was the key's last. As S3 does, the replacement notifies
`s3:ObjectRemoved:DeleteMarkerCreated` for a DeleteObject without a version id and
`s3:ObjectRemoved:Delete` for each version removed, through moto's own
`notifications.send_event` (Lambda, SQS, SNS, EventBridge, as for ObjectCreated).

Also for plain `mock_aws` tests, without a local cloud: `patch_s3_delete_notifications()`
installs it for the rest of the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, install_for_good, original

_S3: Final = "moto.s3.models"
_S3_NOTIFICATIONS: Final = "moto.s3.notifications"


@dataclass(frozen=True)
class _RemovedObject:
    """What moto's notification builders read from a key (`notifications.send_event`),
    taken before moto disposes of the version it removes."""

    name: str
    size: int
    etag: str
    version_id: str


def _removed_object(version: Any) -> _RemovedObject:
    from moto.s3.models import FakeDeleteMarker

    if isinstance(version, FakeDeleteMarker):
        # A delete marker has no content, size or ETag (AWS leaves both out of removal
        # events; moto's event builder writes them for every event).
        return _RemovedObject(version.name, 0, "", version.version_id)
    return _RemovedObject(version.name, version.size, version.etag, version.version_id)


def _delete_object(
    self: Any,
    bucket_name: str,
    key_name: str,
    version_id: str | None = None,
    bypass: bool = False,
) -> tuple[bool, dict[str, Any]]:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    delete = original(S3Backend, "delete_object")
    bucket = self.get_bucket(bucket_name)  # the lookup moto starts with: same errors
    if not bucket.is_versioned:
        # moto sends ObjectRemoved:Delete itself, as AWS does.
        deleted: bool
        meta: dict[str, Any]
        deleted, meta = delete(self, bucket_name, key_name, version_id, bypass)
        return deleted, meta

    removed = None
    if version_id is not None:
        versions = bucket.keys.getlist(key_name, [])
        matching = [v for v in versions if str(v.version_id) == str(version_id)]
        removed = _removed_object(matching[0]) if matching else None
    # On a versioned bucket moto notifies only when a key's last version goes (and then
    # fails if that version is a delete marker: it has no ETag), never for a delete
    # marker created. So its own notification is off while it deletes, and the one AWS
    # sends goes out after. (Nothing else reads the bucket's configuration meanwhile:
    # requests into moto run one at a time in the local cloud, as in a test.)
    configuration = bucket.notification_configuration
    bucket.notification_configuration = None
    try:
        deleted, meta = delete(self, bucket_name, key_name, version_id, bypass)
    finally:
        bucket.notification_configuration = configuration

    if version_id is None:
        if not deleted:  # moto makes no marker for a key it does not have
            return deleted, meta
        event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
        subject = _removed_object(bucket.keys[key_name])  # the marker: the latest version
    else:
        remaining = bucket.keys.getlist(key_name, [])
        if removed is None or any(str(v.version_id) == str(version_id) for v in remaining):
            return deleted, meta
        event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT
        subject = removed
    notifications.send_event(self.account_id, event, bucket, subject)
    return deleted, meta


PATCH: Final = Patch(
    name="s3_delete_notifications",
    checks=Checks(
        signatures=[
            (
                _S3,
                "S3Backend",
                "delete_object",
                ["self", "bucket_name", "key_name", "version_id", "bypass"],
            ),
            (_S3_NOTIFICATIONS, "", "send_event", ["account_id", "event_name", "bucket", "key"]),
        ],
        sources=[
            (
                _S3,
                "S3Backend",
                "delete_object",
                (
                    "bucket = self.get_bucket(bucket_name)",
                    "if not bucket.is_versioned:",
                    "self._set_delete_marker(bucket_name, key_name)",
                    "notifications.send_event(",
                ),
                "versioned deletes notify only through send_event, which the replacement "
                "turns off while moto deletes",
            ),
            (
                _S3,
                "S3Backend",
                "_set_delete_marker",
                ("bucket.keys[key_name] = delete_marker",),
                "a new delete marker is the key's latest version",
            ),
            (
                _S3_NOTIFICATIONS,
                "",
                "send_event",
                ("if bucket.notification_configuration is None:",),
                "a bucket without a notification configuration notifies nothing",
            ),
            (
                _S3_NOTIFICATIONS,
                "",
                "_get_s3_event",
                ("key.etag", "key.size", "key.name"),
                "what an event reads from the removed object (_RemovedObject)",
            ),
            (
                _S3_NOTIFICATIONS,
                "",
                "_send_event_bridge_message",
                ("key.etag", "key.size", "key.name", "key.version_id"),
                "what an EventBridge event reads from the removed object (_RemovedObject)",
            ),
        ],
        attributes=[
            (_S3, "", "FakeDeleteMarker"),
            (_S3_NOTIFICATIONS, "S3NotificationEvent", "OBJECT_REMOVED_DELETE_EVENT"),
            (
                _S3_NOTIFICATIONS,
                "S3NotificationEvent",
                "OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT",
            ),
        ],
    ),
    targets=[(_S3, "S3Backend", "delete_object", _delete_object)],
)


def patch_s3_delete_notifications() -> None:
    """Make moto notify deletes on versioned buckets as S3 does.

    A DeleteObject without a version id on a versioned bucket sends
    `s3:ObjectRemoved:DeleteMarkerCreated` (moto: nothing); one with a version id sends
    `s3:ObjectRemoved:Delete` for the version it removes (moto: only for a key's last
    version). Unversioned buckets are unchanged (`s3:ObjectRemoved:Delete`). For tests
    under plain `mock_aws`: installs it for the rest of the process; calling again does
    nothing. `apply()` installs it too (until `revert()`).
    """
    install_for_good(PATCH)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
