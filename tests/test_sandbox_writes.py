"""The sandbox's transport wrapper sends a response's head and body in one write
(``sandbox.server._OneWrite``); a head without a body in the same loop turn still goes out."""

from __future__ import annotations

import asyncio

from sandbox.server import _OneWrite


class Wire:
    """Stands in for an asyncio transport: records each write and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_go_out_in_one_write() -> None:
    async def main() -> list[bytes]:
        wire = Wire()
        one = _OneWrite(wire)  # type: ignore[arg-type]
        one.write(HEAD)
        one.write(b"{}")
        await asyncio.sleep(0)
        one.write(HEAD)
        one.write(b"[]")
        await asyncio.sleep(0)
        return wire.writes

    assert asyncio.run(main()) == [HEAD + b"{}", HEAD + b"[]"]


def test_a_head_alone_goes_out_on_the_next_turn_or_on_close() -> None:
    async def main() -> tuple[list[bytes], list[bytes], bool]:
        wire = Wire()
        one = _OneWrite(wire)  # type: ignore[arg-type]
        one.write(HEAD)
        assert wire.writes == []
        await asyncio.sleep(0)
        after_turn = list(wire.writes)
        other = Wire()
        two = _OneWrite(other)  # type: ignore[arg-type]
        two.write(HEAD)
        two.close()
        return after_turn, other.writes, other.closed

    assert asyncio.run(main()) == ([HEAD], [HEAD], True)


def test_interim_answers_and_other_writes_are_not_held() -> None:
    async def main() -> list[bytes]:
        wire = Wire()
        one = _OneWrite(wire)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        one.write(b"5\r\nhello\r\n")
        assert one.get_extra_info("socket") == "info:socket"
        return wire.writes

    assert asyncio.run(main()) == [b"HTTP/1.1 100 Continue\r\n\r\n", b"5\r\nhello\r\n"]
