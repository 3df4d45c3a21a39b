"""Docker's multiplexed exec stream, taken apart whatever way the socket splits it."""

from __future__ import annotations

from kubelet.runtime.docker_exec import StreamDemuxer


def test_demuxer_reassembles_frames_split_anywhere() -> None:
    frames = (b"\x01\x00\x00\x00\x00\x00\x00\x03out" + b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
              + b"\x01\x00\x00\x00\x00\x00\x00\x00")
    for size in (1, 3, 7, 8, 9, len(frames)):
        demuxer = StreamDemuxer()
        chunks: list[tuple[int, bytes]] = []
        for at in range(0, len(frames), size):
            chunks += demuxer.feed(frames[at:at + size])
        out = b"".join(d for s, d in chunks if s == 1)
        err = b"".join(d for s, d in chunks if s == 2)
        assert (out, err) == (b"out", b"err\n"), size
