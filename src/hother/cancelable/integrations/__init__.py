"""Integrations with frameworks, one public module each, each behind its own extra.

- `hother.cancelable.integrations.fastapi`: cancel a request's work when its client
  disconnects or its time is up (`pip install 'hother-cancelable[fastapi]'`);
- `hother.cancelable.integrations.httpx`: send an operation's remaining budget with each
  outgoing request, and cap its timeouts to it (`pip install 'hother-cancelable[httpx]'`);
- `hother.cancelable.integrations.redis`: cancel an operation of another process or host by
  its id, and list what runs where, through Redis (`pip install 'hother-cancelable[redis]'`).

Nothing is imported here: importing this package never needs a framework.
"""
