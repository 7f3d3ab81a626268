"""The replay reads sequence, pending count and time from reply subjects as nats-py does."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from medic.services.projector.stream_reader import position, stamp_time

REPLIES = [
    "$JS.ACK.MEDIC.replay_1.1.42.42.1700000000123456789.7",
    "$JS.ACK.MEDIC.replay_1.3.1.1.1699999999999999999.0",
    "$JS.ACK.hub.ACCHASH.MEDIC.replay_1.1.42.42.1700000000123456789.7.token",
    "$JS.ACK._.ACCHASH.MEDIC.replay_1.1.9.9.1700000000000000001.0.token",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_position_agrees_with_nats_metadata(reply: str) -> None:
    meta = Msg.Metadata._from_reply(reply)
    stream_seq, consumer_seq, pending, stamped_ns = position(reply)
    assert (stream_seq, consumer_seq) == (meta.sequence.stream, meta.sequence.consumer)
    assert pending == meta.num_pending
    assert stamp_time(stamped_ns) == meta.timestamp


def test_a_reply_that_is_not_jetstream_is_refused() -> None:
    with pytest.raises(NotJSMessageError):
        position("_INBOX.abc.def")
