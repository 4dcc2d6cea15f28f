"""Pure: the simulated account's `Account` and `Number` answers, shaped like the SDK's models."""

from __future__ import annotations

from datetime import datetime

from mailfax.sandbox.records import JsonObject, format_time


def account_json(
    uid: str, phone: str, created_at: datetime, send_fax_retry: JsonObject
) -> JsonObject:
    return {
        "uid": uid,
        "account_type": "individual",
        "status": "active",
        "email": "sandbox@example.com",
        "name": "Sandbox",
        "lastname": "User",
        "phone": phone,
        "profile_image": "",
        "member_of": [],
        "creation_date": format_time(created_at),
        "last_password_modification_date": format_time(created_at),
        "account_data": {
            "company_name": "",
            "company_logo": "",
            "default_file_type": "pdf",
            "role": "",
            "save_history": True,
            "deactivation_reason": "",
        },
        "notifications": _NOTIFICATIONS,
        "settings": {
            "caller_id_name": "",
            "send_fax": {"retry": send_fax_retry},
            "should_enhance": True,
            "options": {},
        },
    }


def number_json(number_id: str, number: str, uid: str, created_at: datetime) -> JsonObject:
    return {
        "id": number_id,
        "number": number,
        "owner_id": uid,
        "status": "active",
        "assigned_to": [uid],
        "acquired_date": format_time(created_at),
        "expiration_date": None,
        "is_canceled": False,
        "notifications": [{"type": "receive_fax", "email": True, "push_notification": True}],
    }


def _event_switches(**extra: object) -> JsonObject:
    return {
        "low_credit": True,
        "new_feature": False,
        "receive_fax": True,
        "send_fax": True,
        "voicemail": False,
        **extra,
    }


_NOTIFICATIONS: JsonObject = {
    "black_list": {"uids": []},
    "settings": {
        "language": "en",
        "email": _event_switches(
            addresses=["sandbox@example.com"],
            attachments={"confirmation_page": True, "receive_fax": True, "send_fax": True},
        ),
        "push_notifications": _event_switches(),
        "sms": _event_switches(numbers=[]),
    },
}
