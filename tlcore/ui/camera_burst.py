"""Hold-to-record camera capture: the webcam in the page, a burst of frames per hold.

A components-v2 element (inline HTML, CSS and JavaScript, no build step) shows
the webcam (`getUserMedia`) and a "Hold to record" button. While the button is
held (pointer, or Space / Enter), it grabs `FPS` frames a second, each scaled
down to at most `MAX_SIDE` px and encoded as JPEG; on release it sends them to
Python in one go, as data URLs in the trigger value `frames`. A hold stops by
itself at `MAX_FRAMES` and sends what it has. A tap records one frame, a photo.
No camera, a refused permission or a page that may not use the camera (not
https or localhost) are said in the element, and its button stays off.

`decode_frames` turns the payload into `(file name, bytes)` pairs for
`tlcore.data.add_images`, refusing, before anything is stored, a payload that is
not a list of JPEG or PNG data URLs or holds more than the cap.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from tlcore.data.sources import printable
from tlcore.errors import DatasetError

FPS = 8  # frames a second while the button is held
MAX_FRAMES = 60  # per hold: 7.5 s at FPS
MAX_SIDE = 224  # px of a frame's longer side (VGG16's usual input; a run resizes anyway)
JPEG_QUALITY = 0.85
# A 224 px JPEG is 5-30 KB; a frame far larger than that did not come from the element.
MAX_FRAME_BYTES = 1 << 20
EVENT = "frames"
_DATA_URL = re.compile(r"data:image/(jpeg|png);base64,([A-Za-z0-9+/=]+)")

_HTML = """
<div class="burst">
  <video autoplay muted playsinline></video>
  <div class="controls">
    <button type="button" class="record" disabled>
      <span class="dot"></span><span class="label">Hold to record</span>
    </button>
    <span class="count" aria-live="polite"></span>
  </div>
  <p class="status" role="status"></p>
</div>
"""

_CSS = """
.burst { display: flex; flex-direction: column; gap: 0.5rem; font-family: var(--st-font); }
video { width: 100%; max-width: 480px; aspect-ratio: 4 / 3; border-radius: var(--st-base-radius);
        background: var(--st-secondary-background-color); object-fit: cover; }
.controls { display: flex; align-items: center; gap: 0.75rem; }
.record { display: inline-flex; align-items: center; gap: 0.5rem; padding: 0.5rem 1rem;
          border: 1px solid var(--st-primary-color); border-radius: var(--st-button-radius);
          background: var(--st-primary-color); color: white; font: inherit; cursor: pointer;
          user-select: none; touch-action: none; -webkit-user-select: none; }
.record:disabled { opacity: 0.4; cursor: not-allowed; }
.record.recording { background: var(--st-red-color); border-color: var(--st-red-color); }
.dot { width: 0.7rem; height: 0.7rem; border-radius: 50%; background: currentColor; }
.recording .dot { animation: blink 0.5s infinite alternate; }
@keyframes blink { to { opacity: 0.2; } }
.count { color: var(--st-text-color); font-variant-numeric: tabular-nums; }
.status { margin: 0; font-size: 0.875rem; color: var(--st-text-color); opacity: 0.8; }
.status[data-kind="error"] { color: var(--st-red-text-color); opacity: 1; }
"""

_JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const cfg = data || {};
  const video = parentElement.querySelector("video");
  const button = parentElement.querySelector(".record");
  const count = parentElement.querySelector(".count");
  const status = parentElement.querySelector(".status");
  const canvas = document.createElement("canvas");
  let stream = null, timer = null, frames = [], recording = false, closed = false;

  const say = (text, kind) => { status.textContent = text; status.dataset.kind = kind || ""; };
  const plural = (n) => n + " frame" + (n === 1 ? "" : "s");
  const why = (err) => {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError")
      return "Camera permission was denied: allow the camera for this site (the camera icon " +
             "in the address bar), then reload the page.";
    if (name === "NotFoundError" || name === "OverconstrainedError")
      return "No camera found: connect one and reload the page, or add images by upload.";
    if (name === "NotReadableError")
      return "The camera is in use by another application: close it, then reload the page.";
    return "The camera could not start (" + ((err && err.message) || err) + "): reload the " +
           "page, or add images by upload.";
  };

  const grab = () => {
    if (video.readyState < 2 || !video.videoWidth) return;  // no picture yet
    const scale = Math.min(1, cfg.max_side / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    frames.push(canvas.toDataURL("image/jpeg", cfg.quality));
    count.textContent = plural(frames.length);
    if (frames.length >= cfg.max_frames) stop(true);
  };
  const start = () => {
    if (button.disabled || recording) return;
    recording = true;
    frames = [];
    button.classList.add("recording");
    say("Recording: release to add the frames to the class.");
    timer = setInterval(grab, 1000 / cfg.fps);
    grab();
  };
  const stop = (capped) => {
    if (!recording) return;
    recording = false;
    clearInterval(timer);
    timer = null;
    button.classList.remove("recording");
    const sent = frames;
    frames = [];
    if (!sent.length) {
      say("Nothing recorded: the camera had no picture yet. Hold the button again.", "error");
      return;
    }
    say(capped ? "Reached the cap of " + plural(cfg.max_frames) + " per hold: sent them. " +
                 "Hold again for more."
               : "Sent " + plural(sent.length) + ".");
    setTriggerValue("frames", sent);
  };

  button.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    button.setPointerCapture(e.pointerId);  // the release counts wherever it happens
    start();
  });
  for (const ev of ["pointerup", "pointercancel", "lostpointercapture"])
    button.addEventListener(ev, () => stop(false));
  button.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); start(); }
  });
  button.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") { e.preventDefault(); stop(false); }
  });
  button.addEventListener("contextmenu", (e) => e.preventDefault());  // a long touch

  if (cfg.disabled) {
    say(cfg.disabled);
  } else if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This page may not use the camera: open the studio over https or on localhost.",
        "error");
  } else {
    say("Starting the camera: allow it when the browser asks.");
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 },
                                                   height: { ideal: 480 } }, audio: false })
      .then((s) => {
        if (closed) { s.getTracks().forEach((t) => t.stop()); return; }
        stream = s;
        video.srcObject = s;
        return video.play().then(() => {
          button.disabled = false;
          say("Hold the button to record " + cfg.fps + " frames a second (at most " +
              plural(cfg.max_frames) + " per hold); release to add them to the class.");
        });
      })
      .catch((err) => { button.disabled = true; say(why(err), "error"); });
  }
  return () => {
    closed = true;
    clearInterval(timer);
    if (stream) stream.getTracks().forEach((t) => t.stop());
  };
}
"""

_COMPONENT = st.components.v2.component("tlcore.camera_burst", html=_HTML, css=_CSS, js=_JS)


def recorder(key: str, on_frames: Callable[[], None], disabled: str | None = None) -> None:
    """Draw the webcam and its "Hold to record" button.

    Args:
        key: The element's key; `frames(key)` reads a hold's payload with it.
        on_frames: Called (before the page runs again) when a hold has sent frames.
        disabled: Why recording is off (e.g. the role does not allow editing):
            shown in place of the camera, which then never starts; None: on.
    """
    _COMPONENT(key=key, data={"fps": FPS, "max_frames": MAX_FRAMES, "max_side": MAX_SIDE,
                              "quality": JPEG_QUALITY, "disabled": disabled},
               height="content", on_frames_change=on_frames)


def frames(key: str) -> Any:
    """The payload the element with `key` sent this run (for its `on_frames` callback)."""
    state = st.session_state.get(key)
    return state.get(EVENT) if isinstance(state, dict) else None


def decode_frames(payload: Any, cap: int = MAX_FRAMES,
                  stamp: str | None = None) -> list[tuple[str, bytes]]:
    """The frames of one hold as `(file name, bytes)` pairs, as `data.add_images` takes them.

    The bytes are only unwrapped here; `add_images` checks and re-encodes each
    image as an import does.

    Args:
        payload: What the element sent: a list of `data:image/jpeg;base64,...`
            (or PNG) strings; None or an empty list (an empty hold) gives [].
        cap: The most frames one hold may send.
        stamp: The files' shared time stamp; default now (`camera-<stamp>-01.jpg`).

    Returns:
        One pair per frame, in the order recorded.

    Raises:
        DatasetError: The payload is not a list, holds more than `cap` frames, or
            a frame is not a JPEG or PNG data URL of at most `MAX_FRAME_BYTES`.
    """
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise DatasetError("The camera sent no list of frames; hold the button to record "
                           f"again. Received: {type(payload).__name__}")
    if len(payload) > cap:
        raise DatasetError(f"Refused: {len(payload)} frames in one hold > the cap of {cap}; "
                           "record shorter holds.")
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    decoded = []
    for i, item in enumerate(payload, 1):
        # Length first: a string far too long is refused before any regex or decoding.
        match = (_DATA_URL.fullmatch(item) if isinstance(item, str)
                 and len(item) <= MAX_FRAME_BYTES * 4 // 3 + 32 else None)
        try:
            raw = base64.b64decode(match[2], validate=True) if match else None
        except binascii.Error:
            raw = None
        if not raw or len(raw) > MAX_FRAME_BYTES:
            shown = printable(item[:40]) if isinstance(item, str) else type(item).__name__
            raise DatasetError(f"Frame {i} of {len(payload)} is not a JPEG or PNG image of at "
                               f"most {MAX_FRAME_BYTES // 1024} KiB sent as a data URL; "
                               f"nothing was added, record again. Received: {shown!r}")
        ext = "jpg" if match[1] == "jpeg" else "png"
        decoded.append((f"camera-{stamp}-{i:02d}.{ext}", raw))
    return decoded
