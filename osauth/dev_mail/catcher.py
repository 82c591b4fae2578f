"""An SMTP server on loopback that keeps every message as a file (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

from aiosmtpd.controller import Controller


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server, session, envelope) -> str:
        (self.folder / f"{time.time_ns()}.eml").write_bytes(envelope.content)
        return "250 Message caught"


def start_mail_catcher(folder: Path, port: int) -> Controller:
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_SaveToFolder(folder), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
