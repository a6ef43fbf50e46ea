"""The SDK credentials' users in nats-server's configuration: the hashes `flagstream up` keeps for its next start
(a file that is missing or unreadable loses nothing: the bucket is read again once nats-server runs), and a
credential whose user name another user has never makes a second user of that name (nats-server would refuse the
whole configuration)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from flagstream.events.subjects import environment_filter, live_filter
from flagstream.services.runtime import Credentials, HashedUser, authorization_block, hash_password
from flagstream.services.runtime.up import load_hashed_users


def test_the_kept_hashes_load_and_a_bad_file_is_no_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sdk-credentials.json"
    assert load_hashed_users(path) == [], "no file yet"
    user = HashedUser("sdk-default-production.0123456789ab", hash_password("pw"), "default", "production")
    path.write_text(json.dumps([user.__dict__]))
    assert load_hashed_users(path) == [user]
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="flagstream.up"):
        assert load_hashed_users(path) == []
    assert "read from their bucket" in caplog.text


def test_an_extra_user_takes_the_permissions_of_its_environment_and_never_a_name_taken(tmp_path: Path) -> None:
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production")])
    mine = HashedUser("sdk-default-production.0123456789ab", "$2a$06$hash", "default", "production")
    clash = HashedUser("sdk-default-production", "$2a$06$other", "default", "staging")
    block = authorization_block(creds, [mine, clash])
    assert block.count('"sdk-default-production"') == 1, "the environment's own user only once"
    assert "$2a$06$other" not in block
    line = next(part for part in block.split("    { user: ") if part.startswith(json.dumps(mine.user)))
    assert '"$2a$06$hash"' in line
    assert json.dumps(live_filter("default", "production")) in line, "its environment's live subjects"
    assert environment_filter("default", "production") in line, "its environment's consumers"
    assert "staging" not in block
