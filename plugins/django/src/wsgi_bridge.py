"""fastgate's WSGI-to-FastCGI bridge: runs any WSGI app (Django, Flask, ...)
as a FastCGI responder on the listening socket it was given as fd 0.

The fastgate `django` launcher writes this file into the app's private
runtime directory and starts it with the app's Python. One process serves
one request at a time (the gateway's pool runs as many processes as it
wants); connections are kept open between requests (FCGI_KEEP_CONN).

The app comes from the environment, as with IIS's wfastcgi:
  WSGI_HANDLER            dotted name: the longest importable module prefix
                          is imported and the rest looked up as attributes;
                          a trailing "()" calls the result; a class (such as
                          django.core.handlers.wsgi.WSGIHandler) is
                          instantiated, after django.setup() for Django.
  DJANGO_SETTINGS_MODULE  passed to Django as usual.
  PYTHONPATH, PYTHON_PATH ':'-separated folders put first on sys.path.
  FASTGATE_WSGI_VALIDATE  when "1", the app is wrapped in wsgiref.validate.
  FASTGATE_STACK_SIGNAL   a signal (SIGUSR1, set by the launcher): on it, the
                          Python stack of the running request goes to
                          FCGI_STDERR, opened by STACK_MARKER, which the
                          gateway logs (on a slow request, and before a
                          timed-out one is stopped). Requests run in the
                          main thread, where Python runs signal handlers,
                          and a view blocked in time.sleep() or a socket
                          read is interrupted for it and then resumes.

Python tracebacks go to FCGI_STDERR, so the gateway's stderr_mode decides
what the client sees and the log always gets the text. If the app cannot
be imported, the bridge answers the request it gets with the traceback and
a 500, then exits with status 1, so the gateway's rapid-fail protection
stops a broken app from being restarted in a loop. SIGTERM lets the
current request finish, then the bridge exits 0.
"""
import importlib
import io
import os
import signal
import socket
import struct
import sys
import traceback

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, KEEP_CONN = 1, 1
REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3
MAX_CONTENT = 65535
CHUNK = 32768

STACK_MARKER = "fastgate: Python stack of the running request"
STACK_KEEP = 32768

stopping = False
busy = False
# The request being served, (conn, rid), for the stack handler; and
# whether a record is being written (a stack then waits until it is out,
# so that records never interleave).
current = None
sending = False
stack_pending = None


def on_term(signum, frame):
    global stopping
    stopping = True
    if not busy:
        sys.exit(0)


signal.signal(signal.SIGTERM, on_term)


def sendall(conn, data):
    """Every record goes out through here: a stack asked for meanwhile
    follows the record being written instead of cutting into it."""
    global sending, stack_pending
    sending = True
    try:
        conn.sendall(data)
    finally:
        sending = False
    if stack_pending is not None and current is not None:
        text, stack_pending = stack_pending, None
        write_stack(text)


def write_stack(text):
    conn, rid = current
    data = text.encode("utf-8", "replace")[:STACK_KEEP]
    global sending
    sending = True
    try:
        conn.sendall(stream(STDERR, rid, data))
    finally:
        sending = False


def on_stack_signal(signum, frame):
    global stack_pending
    if current is None:
        return
    here = os.path.abspath(__file__)
    entries = traceback.extract_stack(frame)
    # The request's own frames: from the first one that is not the bridge's.
    for i, entry in enumerate(entries):
        if os.path.abspath(entry.filename) != here:
            entries = entries[i:]
            break
    text = "%s (pid %d):\nTraceback (most recent call last):\n%s" % (
        STACK_MARKER, os.getpid(), "".join(traceback.format_list(entries)))
    if sending:
        stack_pending = text
    else:
        write_stack(text)


def install_stack_signal():
    name = os.environ.get("FASTGATE_STACK_SIGNAL", "").strip().upper()
    if name in ("", "NONE", "OFF"):
        return
    if not name.startswith("SIG"):
        name = "SIG" + name
    signum = getattr(signal, name, None)
    if signum in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, on_stack_signal)
    else:
        sys.stderr.write("FASTGATE_STACK_SIGNAL=%s is not SIGUSR1 or SIGUSR2; ignored\n" % name)


# ---- the app ----

def setup_path():
    for var in ("PYTHONPATH", "PYTHON_PATH"):
        for folder in reversed([p for p in os.environ.get(var, "").split(":") if p]):
            if folder not in sys.path:
                sys.path.insert(0, folder)


def resolve(name):
    """WSGI_HANDLER: import the longest importable prefix, getattr the rest."""
    call = name.endswith("()")
    if call:
        name = name[:-2]
    parts = name.split(".")
    obj, error = None, None
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as e:
            # Only "this very module is missing" means: try a shorter prefix.
            if e.name and ".".join(parts[:cut]).startswith(e.name):
                error = e
                continue
            raise
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        break
    else:
        raise error or ImportError("cannot import %r" % name)
    if isinstance(obj, type):
        if obj.__module__.startswith("django."):
            import django
            django.setup(set_prefix=False)
        obj = obj()
    elif call:
        obj = obj()
    return obj


def load_app():
    setup_path()
    handler = os.environ.get("WSGI_HANDLER")
    if not handler:
        raise RuntimeError("WSGI_HANDLER is not set (e.g. mysite.wsgi.application)")
    app = resolve(handler)
    if os.environ.get("FASTGATE_WSGI_VALIDATE") == "1":
        from wsgiref.validate import validator
        app = validator(app)
    return app


# ---- FastCGI records ----

def record(rtype, rid, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", VERSION, rtype, rid, len(content), pad) + content + b"\0" * pad


def stream(rtype, rid, data):
    out = []
    for i in range(0, len(data), MAX_CONTENT):
        out.append(record(rtype, rid, data[i:i + MAX_CONTENT]))
    return b"".join(out)


def read_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_record(conn):
    version, rtype, rid, length, pad = struct.unpack(">BBHHBx", read_exact(conn, 8))
    if version != VERSION:
        raise EOFError
    content = read_exact(conn, length) if length else b""
    if pad:
        read_exact(conn, pad)
    return rtype, rid, content


def parse_pairs(data):
    pairs, i = {}, 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            n = data[i]
            if n & 0x80:
                n = struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF
                i += 4
            else:
                i += 1
            lengths.append(n)
        name = data[i:i + lengths[0]]
        i += lengths[0]
        value = data[i:i + lengths[1]]
        i += lengths[1]
        pairs[name.decode("latin-1")] = value.decode("latin-1")
    return pairs


def encode_pairs(pairs):
    out = b""
    for name, value in pairs:
        for n in (len(name), len(value)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += name + value
    return out


def management(conn, rtype, content):
    if rtype == GET_VALUES:
        known = {"FCGI_MAX_CONNS": b"1", "FCGI_MAX_REQS": b"1", "FCGI_MPXS_CONNS": b"0"}
        asked = parse_pairs(content)
        answer = [(k.encode(), known[k]) for k in asked if k in known]
        conn.sendall(record(GET_VALUES_RESULT, 0, encode_pairs(answer)))
    else:
        conn.sendall(record(UNKNOWN_TYPE, 0, bytes([rtype]) + b"\0" * 7))


# ---- one request ----

class Errors:
    """wsgi.errors: text written during the request goes to FCGI_STDERR."""

    def __init__(self, conn, rid):
        self.conn, self.rid = conn, rid

    def write(self, text):
        if text:
            sendall(self.conn, stream(STDERR, self.rid, text.encode("utf-8", "replace")))

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass


def serve_request(conn, rid, params, body, app, broken):
    errors = Errors(conn, rid)
    out = []  # buffered until the first body bytes, then streamed
    state = {"status": None, "headers": None, "sent": False}

    def send(data):
        if data:
            sendall(conn, stream(STDOUT, rid, data))

    def send_head():
        status, headers = state["status"], state["headers"]
        head = "Status: %s\r\n" % status
        head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
        send(head.encode("latin-1") + b"\r\n")
        state["sent"] = True

    def start_response(status, headers, exc_info=None):
        if exc_info:
            try:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response called twice without exc_info")
        state["status"], state["headers"] = status, headers
        return write

    def write(data):
        if not state["sent"]:
            send_head()
        send(data)

    if broken is not None:
        errors.write(broken)
        send(b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
             b"The application could not be loaded; the traceback is in the gateway log.\n")
        return
    environ = dict(params)
    environ.update({
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": errors,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.url_scheme": "https" if params.get("HTTPS", "").lower() in ("on", "1") else "http",
    })
    environ.setdefault("SCRIPT_NAME", "")
    environ.setdefault("PATH_INFO", "")
    environ.setdefault("QUERY_STRING", "")
    if not environ.get("CONTENT_LENGTH"):
        environ.pop("CONTENT_LENGTH", None)
    if not environ.get("CONTENT_TYPE"):
        environ.pop("CONTENT_TYPE", None)
    result = None
    try:
        result = app(environ, start_response)
        for data in result:
            if data:
                if not state["sent"]:
                    send_head()
                send(data)
        if not state["sent"]:
            if state["status"] is None:
                raise AssertionError("the app returned without calling start_response")
            send_head()
    except Exception:
        errors.write(traceback.format_exc())
        if not state["sent"]:
            send(b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
                 b"Internal Server Error\n")
    finally:
        if hasattr(result, "close"):
            try:
                result.close()
            except Exception:
                errors.write(traceback.format_exc())


def serve_connection(conn, app, broken):
    """Serves requests on one connection until the gateway closes it.
    Returns False when the bridge should exit."""
    global busy, current, stack_pending
    rid, keep, params_raw, body = None, False, b"", []
    while True:
        try:
            rtype, req_id, content = read_record(conn)
        except (EOFError, ConnectionError):
            return True
        if req_id == 0:
            management(conn, rtype, content)
            continue
        if rtype == BEGIN_REQUEST:
            role, flags = struct.unpack(">HB5x", content)
            if rid is not None:
                conn.sendall(record(END_REQUEST, req_id, struct.pack(">IB3x", 0, CANT_MPX_CONN)))
                continue
            if role != RESPONDER:
                conn.sendall(record(END_REQUEST, req_id, struct.pack(">IB3x", 0, UNKNOWN_ROLE)))
                continue
            rid, keep, params_raw, body = req_id, bool(flags & KEEP_CONN), b"", []
            busy = True
        elif req_id != rid:
            continue
        elif rtype == PARAMS:
            params_raw += content
        elif rtype == ABORT_REQUEST:
            conn.sendall(record(END_REQUEST, rid, struct.pack(">IB3x", 0, REQUEST_COMPLETE)))
            rid, busy = None, False
            if not keep:
                return not stopping
        elif rtype == STDIN:
            if content:
                body.append(content)
                continue
            current = (conn, rid)
            try:
                serve_request(conn, rid, parse_pairs(params_raw), b"".join(body), app, broken)
            finally:
                # No stack after END_REQUEST: it would land in the next request.
                current, stack_pending = None, None
            sendall(conn, record(STDOUT, rid) + record(END_REQUEST, rid, struct.pack(">IB3x", 0, REQUEST_COMPLETE)))
            rid, busy = None, False
            if broken is not None or stopping:
                return False
            if not keep:
                return True


def main():
    install_stack_signal()
    listener = socket.socket(fileno=0)
    try:
        app, broken = load_app(), None
    except Exception:
        app, broken = None, traceback.format_exc()
        sys.stderr.write(broken)
        sys.stderr.flush()
    while not stopping:
        conn, _ = listener.accept()
        if broken is not None:
            serve_connection(conn, app, broken)
            # At once, without the interpreter's teardown: the gateway
            # counts this exit toward rapid_fails_per_minute, and the sooner
            # it sees it the fewer processes a broken app costs.
            sys.stderr.flush()
            os._exit(1)
        with conn:
            go_on = serve_connection(conn, app, broken)
        if not go_on:
            break


if __name__ == "__main__":
    main()
