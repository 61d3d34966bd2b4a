"""A real SMTP server for the notice tests: aiosmtpd, writing each message it accepts as one
JSON line (message id, envelope, decoded subject and text body) to the file given.

    python sink.py 127.0.0.1 2525 /tmp/mails.jsonl

Prints "ready" once it listens; runs until killed."""

import email
import json
import sys
import threading
from email import policy

from aiosmtpd.controller import Controller


class Record:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        part = msg.get_body(preferencelist=("plain",))
        line = {
            "message_id": msg["Message-ID"],
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["Subject"]),
            "body": part.get_content() if part is not None else "",
        }
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return "250 Message accepted for delivery"


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(Record(path), hostname=host, port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
