"""Data type, status and pool-mode constants wrapper files import from ``aiges.core.types``.

Served under both ``aiges.core.types`` and the older ``aiges.types``.
"""

from __future__ import annotations

STRING = 0
AUDIO = 1
IMAGE = 2
VIDEO = 3
PER = 4

DataText = STRING
DataAudio = AUDIO
DataImage = IMAGE
DataVideo = VIDEO
DataPer = PER

Types = {STRING: "text", AUDIO: "audio", IMAGE: "image", VIDEO: "video", PER: "per"}

DataBegin = 0
DataContinue = 1
DataEnd = 2
DataOnce = 3
Once = DataOnce

Status = {DataBegin: "begin", DataContinue: "continue", DataEnd: "end", DataOnce: "once"}

THREAD_MODE = "thread"
PROCESS_MODE = "process"
