"""Idle keep-alive connections for tests/bench/harness.sh: the front's memory with N of them.

    python3 idle_conns.py PORT COUNT PATH FRONT_PID

Reads the front's RSS (VmRSS of FRONT_PID and of its descendants with the same
command name: nginx's workers, not php-fpm), opens COUNT connections to
127.0.0.1:PORT, sends one keep-alive GET for PATH on each and reads its answer
whole, waits a second, reads the RSS again, checks how many connections the
server still holds open, and closes them all with a reset (SO_LINGER 0: no
TIME_WAIT left to use up the loopback's ports). Prints one line:

    IDLE opened=N answered=N still_open=N rss_before_kib=N rss_after_kib=N
"""
import os
import resource
import socket
import struct
import sys
import time


def front_pids(root):
    """root and its descendants whose command name is root's."""
    def comm(pid):
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    name, pids, todo = comm(root), [root], [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        for kid in kids:
            try:
                if comm(kid) == name:
                    pids.append(kid)
                    todo.append(kid)
            except OSError:
                pass
    return pids


def rss_kib(root):
    total = 0
    for pid in front_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_response(sock):
    """Reads one HTTP/1.1 response with a Content-Length; True if it was a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return lines[0].split()[1] == b"200"


def main():
    port, count, path, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < count + 100:
        sys.exit(f"idle_conns.py: the open-file limit is {hard}, {count} connections need more")
    before = rss_kib(root)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    socks, answered = [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            answered += read_response(s)
        except OSError as e:
            print(f"idle_conns.py: connection {len(socks) + 1}: {e}", file=sys.stderr)
            s.close()
            break
        socks.append(s)
    time.sleep(1)
    after = rss_kib(root)
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            still_open += s.recv(1, socket.MSG_PEEK) != b""  # b"": closed by the server
        except BlockingIOError:
            still_open += 1  # nothing to read: open and idle
        except OSError:
            pass
    for s in socks:
        s.close()
    print(f"IDLE opened={len(socks)} answered={answered} still_open={still_open} "
          f"rss_before_kib={before} rss_after_kib={after}")


if __name__ == "__main__":
    main()
