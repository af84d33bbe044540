"""The hold-to-record payload: data URLs in, `(file name, bytes)` out, the rest refused."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tlcore.errors import DatasetError
from tlcore.ui import camera_burst


def _image(colour: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, fmt)
    return buf.getvalue()


def _url(raw: bytes, mime: str = "jpeg") -> str:
    return f"data:image/{mime};base64," + base64.b64encode(raw).decode()


def test_frames_decode_to_named_files_in_order():
    raws = [_image((200, 0, 0)), _image((0, 200, 0)), _image((0, 0, 200), "PNG")]
    frames = camera_burst.decode_frames([_url(raws[0]), _url(raws[1]), _url(raws[2], "png")],
                                        stamp="20260101-120000")
    assert frames == [("camera-20260101-120000-01.jpg", raws[0]),
                      ("camera-20260101-120000-02.jpg", raws[1]),
                      ("camera-20260101-120000-03.png", raws[2])]
    assert Image.open(io.BytesIO(frames[0][1])).size == (40, 30)


@pytest.mark.parametrize("payload", [None, []])
def test_an_empty_hold_gives_nothing(payload):
    assert camera_burst.decode_frames(payload) == []


@pytest.mark.parametrize(("bad", "received"), [
    ("data:text/html;base64,PHNjcmlwdD4=", "data:text/html;base64,PHNjcmlwdD4="),
    ("data:image/jpeg;base64,not base64!", "data:image/jpeg;base64,not base64!"),
    ("data:image/jpeg;base64,", "data:image/jpeg;base64,"),
    (b"\xff\xd8", "bytes"),
    ("data:image/jpeg;base64,\n/9j/", "data:image/jpeg;base64,\\n/9j/"),
])
def test_a_bad_frame_refuses_the_hold_and_says_which(bad, received):
    good = _url(_image((10, 20, 30)))
    with pytest.raises(DatasetError) as caught:
        camera_burst.decode_frames([good, bad, good])
    message = str(caught.value)
    assert message.startswith("Frame 2 of 3 is not a JPEG or PNG image")
    assert "nothing was added" in message and f"Received: {received!r}" in message
    assert "\n" not in message


def test_an_oversized_frame_is_refused_before_decoding():
    huge = "data:image/jpeg;base64," + "A" * (camera_burst.MAX_FRAME_BYTES * 2)
    with pytest.raises(DatasetError, match="Frame 1 of 1 is not a JPEG or PNG image of at most "
                                           "1024 KiB"):
        camera_burst.decode_frames([huge])


def test_the_cap_per_hold():
    frame = _url(_image((1, 2, 3)))
    assert len(camera_burst.decode_frames([frame] * camera_burst.MAX_FRAMES)) == 60
    with pytest.raises(DatasetError, match=r"Refused: 61 frames in one hold > the cap of 60; "
                                           "record shorter holds"):
        camera_burst.decode_frames([frame] * 61)
    with pytest.raises(DatasetError, match="Refused: 3 frames in one hold > the cap of 2"):
        camera_burst.decode_frames([frame] * 3, cap=2)


def test_a_payload_that_is_no_list_is_refused():
    with pytest.raises(DatasetError, match="no list of frames.*Received: dict"):
        camera_burst.decode_frames({"frames": []})
