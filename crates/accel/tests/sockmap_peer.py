"""Both ends of the TCP connections of crates/accel/tests/sockmap.rs.

Run by the test inside its own cgroup (with the bypass attached) and network namespace:
    python3 sockmap_peer.py SCENARIO
Every byte is checked: each direction of each connection carries a payload made from a seed, and
the receiver compares the SHA-256 of what it read with the one of what was sent (or of the prefix
of it, where the sender was killed or reset mid-stream). Every socket has a timeout, so nothing
can hang; the test also kills this process at its own deadline. The last stdout line is a JSON
report; a failure is a non-zero exit with the reason on stderr.
"""

import array
import fcntl
import hashlib
import json
import os
import random
import socket
import struct
import sys
import tempfile
import termios
import threading
import time

TIMEOUT = 30.0
# Message sizes from 1 B to 1 MiB; a run of 1-byte writes in the middle makes the small-write
# policy move a direction from the bypass to TCP in mid-stream.
SIZES = [1, 3, 64, 511, 1500, 4096, 16384, 65536, 262144, 1 << 20]
TINY_RUN = 40


def payload(seed, n):
    return random.Random(seed).randbytes(n)


def sizes(seed, total, tiny_run=True):
    rng = random.Random(seed ^ 0x5EED)
    out, left = [], total
    while left > 0:
        s = min(rng.choice(SIZES), left)
        out.append(s)
        left -= s
        if tiny_run and len(out) == 8:
            for _ in range(min(TINY_RUN, left)):
                out.append(1)
                left -= 1
    return out


def send_all(sock, data, chunks, mode):
    """Sends data in chunks with send(), sendfile() or splice(); returns bytes sent."""
    off = 0
    if mode == "sendfile":
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.flush()
            for c in chunks:
                end = off + c
                while off < end:
                    n = os.sendfile(sock.fileno(), f.fileno(), off, end - off)
                    if n == 0:
                        raise OSError("sendfile wrote nothing")
                    off += n
        return off
    if mode == "splice":
        r, w = os.pipe()
        try:
            for c in chunks:
                end = off + c
                while off < end:
                    # A pipe holds 64 KiB: fill it, then splice it into the socket.
                    k = os.write(w, data[off : min(end, off + 65536)])
                    while k > 0:
                        n = os.splice(r, sock.fileno(), k)
                        if n == 0:
                            raise OSError("splice wrote nothing")
                        k -= n
                        off += n
        finally:
            os.close(r)
            os.close(w)
        return off
    view = memoryview(data)
    for c in chunks:
        sock.sendall(view[off : off + c])
        off += c
    return off


def recv_all(sock, limit=None, slow=0.0):
    """Reads until EOF (or a reset); returns (bytes read, sha256 hexdigest, error or None)."""
    h = hashlib.sha256()
    n = 0
    buf = bytearray(1 << 20)
    err = None
    while limit is None or n < limit:
        try:
            k = sock.recv_into(buf, 4096 if slow else len(buf))
        except ConnectionResetError as e:
            err = "reset"
            break
        except OSError as e:
            err = str(e)
            break
        if k == 0:
            break
        h.update(memoryview(buf)[:k])
        n += k
        if slow:
            time.sleep(slow)
    return n, h.hexdigest(), err


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Failures:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, what):
        with self.lock:
            self.items.append(what)


def listeners():
    """(family label, listening socket, address to connect to)."""
    out = []
    s4 = socket.create_server(("127.0.0.1", 0), backlog=256)
    out.append(("v4", s4, ("127.0.0.1", s4.getsockname()[1])))
    s6 = socket.create_server(("::1", 0), family=socket.AF_INET6, backlog=256)
    out.append(("v6", s6, ("::1", s6.getsockname()[1])))
    # Dual-stack server: an IPv4 client appears to it as ::ffff:127.0.0.1.
    sd = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True, backlog=256)
    out.append(("v4-mapped", sd, ("127.0.0.1", sd.getsockname()[1])))
    for _, s, _ in out:
        s.settimeout(TIMEOUT)
    return out


def connect(addr):
    c = socket.create_connection(addr, timeout=TIMEOUT)
    c.settimeout(TIMEOUT)
    return c


def duplex(sock, send_seed, recv_seed, total, mode, half_close_first, fails, label):
    """Sends one payload and reads the other at the same time. half_close_first: this side
    sends only after it has read the peer's EOF (the peer half-closed first)."""
    result = {}

    def reader():
        result["recv"] = recv_all(sock)

    def writer():
        data = payload(send_seed, total)
        sent = send_all(sock, data, sizes(send_seed, total), mode)
        sock.shutdown(socket.SHUT_WR)
        result["sent"] = sent

    if half_close_first:
        reader()
        writer()
    else:
        t = threading.Thread(target=reader)
        t.start()
        writer()
        t.join(TIMEOUT * 2)
        if t.is_alive():
            fails.add(f"{label}: reader hung")
            return
    n, digest, err = result["recv"]
    want = payload(recv_seed, total)
    if err or n != total or digest != sha(want):
        fails.add(f"{label}: read {n} of {total} bytes, error {err}, checksum ok {digest == sha(want)}")


def recv_exact(sock, n):
    b = b""
    while len(b) < n:
        k = sock.recv(n - len(b))
        if not k:
            raise OSError("EOF before the connection id")
        b += k
    return b


def send_id(sock, i):
    sock.sendall(struct.pack("!I", i))


def recv_id(sock):
    return struct.unpack("!I", recv_exact(sock, 4))[0]


def scenario_stress(conns_per_family=16, total=3 << 20):
    fails = Failures()
    threads = []
    modes = ["send", "sendfile", "splice"]
    params = {}
    i = 0
    for fam, lsock, addr in listeners():
        for j in range(conns_per_family):
            i += 1
            half = j % 2 == 0
            p = {
                "mode_c": modes[i % 3],
                "mode_s": modes[(i + 1) % 3],
                "half": half,
                "cseed": i * 2,
                "sseed": i * 2 + 1,
            }
            p["label"] = f"{fam} #{j} ({p['mode_c']}/{p['mode_s']}{', half-close' if half else ''})"
            params[i] = p

            def client(addr=addr, i=i, p=p):
                try:
                    c = connect(addr)
                    send_id(c, i)
                    duplex(c, p["cseed"], p["sseed"], total, p["mode_c"], False, fails, p["label"] + " client")
                    c.close()
                except Exception as e:  # noqa: BLE001: every failure is reported
                    fails.add(f"{p['label']} client: {e!r}")

            def server(lsock=lsock):
                try:
                    s, _ = lsock.accept()
                    s.settimeout(TIMEOUT)
                    p = params[recv_id(s)]
                    duplex(s, p["sseed"], p["cseed"], total, p["mode_s"], p["half"], fails, p["label"] + " server")
                    s.close()
                except Exception as e:  # noqa: BLE001
                    fails.add(f"server: {e!r}")

            threads += [threading.Thread(target=server), threading.Thread(target=client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
        if t.is_alive():
            fails.add("a peer thread hung")
    return fails, {"connections": i, "bytes_per_direction": total}


def scenario_slow(total=24 << 20):
    """A fast writer and a reader that sleeps first, then reads 4 KiB at a time for a while."""
    fails = Failures()
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(TIMEOUT)
    addr = ("127.0.0.1", lsock.getsockname()[1])
    info = {}

    def writer():
        c = connect(addr)
        data = payload(7, total)
        t0 = time.monotonic()
        view = memoryview(data)
        off = 0
        while off < total:
            off += c.send(view[off : off + 65536])
            if "at_1s" not in info and time.monotonic() - t0 > 1.0:
                info["at_1s"] = off
        info.setdefault("at_1s", off)
        c.shutdown(socket.SHUT_WR)
        recv_all(c)
        c.close()

    t = threading.Thread(target=writer)
    t.start()
    s, _ = lsock.accept()
    s.settimeout(TIMEOUT)
    time.sleep(2.0)
    # Slow phase: 256 reads of 4 KiB with pauses, then everything else at full speed.
    h = hashlib.sha256()
    got = 0
    for _ in range(256):
        b = s.recv(4096)
        if not b:
            break
        h.update(b)
        got += len(b)
        time.sleep(0.002)
    buf = bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if k == 0:
            break
        h.update(memoryview(buf)[:k])
        got += k
    s.close()
    t.join(TIMEOUT * 2)
    if t.is_alive():
        fails.add("slow: writer hung")
    if got != total or h.hexdigest() != sha(payload(7, total)):
        fails.add(f"slow: read {got} of {total} bytes, checksum ok {h.hexdigest() == sha(payload(7, total))}")
    return fails, {"written_before_reader_started": info.get("at_1s", 0), "total": total}


def scenario_abrupt():
    """Peers that vanish mid-stream: a child process that exits while writing, one that closes
    with SO_LINGER 0 (RST), and a reader that exits while its peer writes. The survivor must see
    EOF or a reset, never hang, and every byte it read must be a prefix of what was sent."""
    fails = Failures()
    total = 16 << 20
    report = {}
    for case in ["exit-writer", "rst-writer", "exit-reader"]:
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.settimeout(TIMEOUT)
        addr = ("127.0.0.1", lsock.getsockname()[1])
        data = payload(11, total)
        pid = os.fork()
        if pid == 0:
            try:
                c = connect(addr)
                if case == "exit-reader":
                    c.recv(65536)
                    os._exit(0)
                view = memoryview(data)
                c.sendall(view[: 5 << 20])
                if case == "rst-writer":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.close()
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(3)
        s, _ = lsock.accept()
        s.settimeout(TIMEOUT)
        if case == "exit-reader":
            # Writes may all succeed while the peer is still alive (redirected bytes are queued
            # at the peer without the socket buffer limit, see the README); once the peer is
            # gone, writing must fail within a bounded number of tries.
            sent, err = 0, None
            view = memoryview(data)
            try:
                while sent < total:
                    sent += s.send(view[sent : sent + 65536])
                os.waitpid(pid, 0)
                pid = None
                for _ in range(200):
                    s.send(b"x" * 65536)
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError) as e:
                err = type(e).__name__
            except OSError as e:
                err = str(e)
            if err is None:
                fails.add(f"{case}: writing to a peer that exited never failed ({sent} bytes)")
            report[case] = {"sent": sent, "error": err}
        else:
            n, digest, err = recv_all(s)
            if n > (5 << 20) or digest != sha(data[:n]):
                fails.add(f"{case}: read {n} bytes that are not a prefix of what was sent")
            if case == "exit-writer" and (n != 5 << 20 or err):
                fails.add(f"{case}: a clean exit must deliver all 5 MiB, got {n} ({err})")
            report[case] = {"read": n, "error": err}
        status = os.waitpid(pid, 0)[1] if pid else 0
        if os.WEXITSTATUS(status) != 0:
            fails.add(f"{case}: the child failed ({status})")
        s.close()
        lsock.close()
    return fails, report


def scenario_detach(conns=8, total=16 << 20):
    """Connections stream both ways; half-way the test detaches the bypass (we print 'ready'
    and wait for a line on stdin); the connections go on and every byte must arrive. One
    reader is paused across the detach, so bytes redirected to it are still unread then."""
    fails = Failures()
    lsock = socket.create_server(("127.0.0.1", 0), backlog=64)
    lsock.settimeout(TIMEOUT)
    addr = ("127.0.0.1", lsock.getsockname()[1])
    half = threading.Barrier(conns * 4 + 1, timeout=TIMEOUT * 2)
    more = threading.Barrier(conns * 2 + 1, timeout=TIMEOUT * 2)
    resume = threading.Event()
    mid, extra = total // 2, 256 << 10

    def side(sock, send_seed, recv_seed, label, pause_reader):
        data = payload(send_seed, total)
        out = {}

        def reader():
            h = hashlib.sha256()
            got = 0
            buf = bytearray(1 << 16)
            waited = False
            while True:
                if not waited and got >= mid:
                    half.wait()
                    waited = True
                    if pause_reader:
                        resume.wait(TIMEOUT)
                k = sock.recv_into(buf)
                if k == 0:
                    break
                h.update(memoryview(buf)[:k])
                got += k
            if not waited:
                half.wait()
            out["r"] = (got, h.hexdigest())

        t = threading.Thread(target=reader)
        t.start()
        view = memoryview(data)
        try:
            sock.sendall(view[:mid])
            half.wait()
            # Redirected before the detach; the paused reader leaves it unread across it.
            sock.sendall(view[mid : mid + extra])
            more.wait()
            resume.wait(TIMEOUT)
            sock.sendall(view[mid + extra :])
            sock.shutdown(socket.SHUT_WR)
        except Exception as e:  # noqa: BLE001
            fails.add(f"{label}: {e!r}")
        t.join(TIMEOUT * 2)
        got, digest = out.get("r", (0, ""))
        if got != total or digest != sha(payload(recv_seed, total)):
            fails.add(f"{label}: read {got} of {total} bytes, checksum ok {digest == sha(payload(recv_seed, total))}")

    threads = []
    for i in range(conns):

        def client(i=i):
            c = connect(addr)
            send_id(c, i)
            side(c, 100 + i, 200 + i, f"#{i} client", i == 0)
            c.close()

        def server():
            s, _ = lsock.accept()
            s.settimeout(TIMEOUT)
            i = recv_id(s)
            side(s, 200 + i, 100 + i, f"#{i} server", False)
            s.close()

        threads.append(threading.Thread(target=client))
        threads.append(threading.Thread(target=server))
    for t in threads:
        t.start()
    half.wait()
    more.wait()
    print("ready", flush=True)
    sys.stdin.readline()
    resume.set()
    for t in threads:
        t.join(TIMEOUT * 3)
        if t.is_alive():
            fails.add("a peer thread hung")
    return fails, {"connections": conns, "bytes_per_direction": total}


def scenario_unread(total=1 << 20):
    """Bytes redirected to a reader that has not read them when the bypass is detached (we
    print 'ready' and wait for a line on stdin), then more bytes both ways after it."""
    fails = Failures()
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(TIMEOUT)
    c = connect(("127.0.0.1", lsock.getsockname()[1]))
    s, _ = lsock.accept()
    s.settimeout(TIMEOUT)
    data = payload(21, 2 * total)
    c.sendall(data[:total])
    print("ready", flush=True)
    sys.stdin.readline()
    c.sendall(data[total:])
    c.shutdown(socket.SHUT_WR)
    n, digest, err = recv_all(s)
    if n != 2 * total or digest != sha(data) or err:
        fails.add(f"unread: read {n} of {2 * total} bytes ({err}), checksum ok {digest == sha(data)}")
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    n, digest, err = recv_all(c)
    if n != 2 * total or digest != sha(data) or err:
        fails.add(f"unread: the reply read {n} of {2 * total} bytes ({err})")
    return fails, {"bytes": 2 * total}


def inq(sock):
    b = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, b)
    return b[0]


def scenario_outside(n=4096):
    """A peer outside the cgroup (a forked child moved to the parent cgroup), as client and as
    server. FIONREAD on our socket must count bytes that came over TCP: on this kernel it counts
    only redirected bytes on a socket in the map, which stalled nginx (it reads what FIONREAD
    says is there, then waits for an edge-triggered wake-up that never comes)."""
    fails = Failures()
    own = open("/proc/self/cgroup").read().split("::", 1)[1].strip()
    mount = next(l.split()[1] for l in open("/proc/mounts") if l.split()[2] == "cgroup2")
    parent = os.path.join(mount + os.path.dirname(own), "cgroup.procs")
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(TIMEOUT)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with open(parent, "w") as f:
                f.write(str(os.getpid()))
            outside = socket.create_server(("127.0.0.1", 0))
            os.write(w, outside.getsockname()[1].to_bytes(2, "big"))
            c = connect(("127.0.0.1", lsock.getsockname()[1]))
            c.sendall(payload(31, n))
            s, _ = outside.accept()
            s.settimeout(TIMEOUT)
            recv_exact(s, 5)
            s.sendall(payload(32, n))
            recv_exact(c, 1)
            recv_exact(s, 1)
        finally:
            os._exit(0)
    port = int.from_bytes(os.read(r, 2), "big")
    srv, _ = lsock.accept()
    srv.settimeout(TIMEOUT)
    srv.recv(1, socket.MSG_PEEK)
    time.sleep(0.2)
    if inq(srv) != n:
        fails.add(f"server side: FIONREAD {inq(srv)} with {n} bytes queued from a client outside the bypass")
    got = recv_exact(srv, 1024)
    if inq(srv) != n - 1024:
        fails.add(f"server side: FIONREAD {inq(srv)} after reading 1024 of {n}")
    rest = recv_exact(srv, n - len(got))
    if got + rest != payload(31, n):
        fails.add("server side: bytes differ")
    cli = connect(("127.0.0.1", port))
    cli.sendall(b"hello")
    first = recv_exact(cli, 1024)
    time.sleep(0.2)
    if inq(cli) != n - 1024:
        fails.add(f"client side: FIONREAD {inq(cli)} after reading 1024 of {n} from a server outside the bypass")
    if first + recv_exact(cli, n - 1024) != payload(32, n):
        fails.add("client side: bytes differ")
    srv.sendall(b"x")
    cli.sendall(b"x")
    os.waitpid(pid, 0)
    return fails, {"bytes": 2 * n}


def main():
    name = sys.argv[1]
    fails, report = {
        "stress": scenario_stress,
        "slow": scenario_slow,
        "abrupt": scenario_abrupt,
        "detach": scenario_detach,
        "unread": scenario_unread,
        "outside": scenario_outside,
    }[name]()
    report["failures"] = fails.items
    print(json.dumps(report), flush=True)
    if fails.items:
        for f in fails.items:
            print(f, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
