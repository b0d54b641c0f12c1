# A stand-in "internet" for the egress tests, run inside a network namespace the test made: per address an HTTP
# server on :80 and a TLS server on :443 that say who they are and an echo server on :7, a DNS server with a fixed
# table, and a SOCKS5 proxy that logs what it tunnels. Prints "ready", then one line per DNS query ("dns <name>")
# and per tunnel ("socks <user> <host>:<port>", or "socks-denied <user>" for wrong credentials).
import json, socket, ssl, struct, sys, threading

servers = json.loads(sys.argv[1])   # {"198.51.100.10": "allowed", ...}
names = json.loads(sys.argv[2])     # {"allowed.test": "198.51.100.10", ...}
dns_address, socks_address, cert, key = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
socks_user = sys.argv[7] if len(sys.argv) > 7 else ""
socks_password = sys.argv[8] if len(sys.argv) > 8 else ""
lock = threading.Lock()

def say(line):
    with lock:
        print(line, flush=True)

def listen(address, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port)); s.listen(64); return s

def serve(s, handle):
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=guard, args=(handle, c), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()

def guard(handle, c):
    try:
        handle(c)
    except Exception:
        pass
    finally:
        c.close()

def http(name):
    def handle(c):
        c.settimeout(5); head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk: break
            head += chunk
        host = ""
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("host:"): host = line[5:].strip()
        c.sendall(("HTTP/1.0 200 OK\r\n\r\nhello from %s host=%s\n" % (name, host)).encode())
    return handle

def tls(name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(cert, key)
    seen = {}
    def sni(sock, server_name, ctx):
        seen[id(sock)] = server_name
    context.sni_callback = sni
    def handle(c):
        c.settimeout(5)
        t = context.wrap_socket(c, server_side=True)
        t.sendall(("hello from %s sni=%s\n" % (name, seen.pop(id(t), None) or "")).encode())
        t.close()
    return handle

def echo(c):
    c.settimeout(None)
    while True:
        data = c.recv(65536)
        if not data: break
        c.sendall(data)

def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((dns_address, 53))
    def loop():
        while True:
            data, peer = s.recvfrom(4096)
            try:
                qid, flags, qd = struct.unpack(">HHH", data[:6])
                i, labels = 12, []
                while data[i]:
                    labels.append(data[i + 1:i + 1 + data[i]].decode()); i += 1 + data[i]
                qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
                question = data[12:i + 5]
                name = ".".join(labels).lower()
                say("dns " + name)
                address = names.get(name)
                answers = b""
                if address and qtype == 1:
                    answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4) + socket.inet_aton(address)
                rcode = 0 if address else 3
                reply = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0) + question + answers
                s.sendto(reply, peer)
            except Exception as e:
                say("dns-error %s" % e)
    threading.Thread(target=loop, daemon=True).start()

def recv_exact(c, n):
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk: raise EOFError()
        data += chunk
    return data

def socks(c):
    c.settimeout(10)
    version, count = recv_exact(c, 2)
    methods = recv_exact(c, count)
    user = "-"
    if socks_user:
        if 2 not in methods: c.sendall(b"\x05\xff"); return
        c.sendall(b"\x05\x02")
        recv_exact(c, 1); u = recv_exact(c, recv_exact(c, 1)[0]).decode(); p = recv_exact(c, recv_exact(c, 1)[0]).decode()
        if (u, p) != (socks_user, socks_password): c.sendall(b"\x01\x01"); say("socks-denied " + u); return
        c.sendall(b"\x01\x00"); user = u
    else:
        c.sendall(b"\x05\x00")
    _, command, _, kind = recv_exact(c, 4)
    if kind == 1: host = socket.inet_ntoa(recv_exact(c, 4))
    elif kind == 3: host = recv_exact(c, recv_exact(c, 1)[0]).decode()
    else: return
    port = struct.unpack(">H", recv_exact(c, 2))[0]
    say("socks %s %s:%d" % (user, host, port))
    target = socket.create_connection((names.get(host, host), port), timeout=5)
    c.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("0.0.0.0") + b"\x00\x00")
    c.settimeout(None); target.settimeout(None)
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                b.sendall(d)
        except Exception:
            pass
        try: b.shutdown(socket.SHUT_WR)
        except Exception: pass
    t = threading.Thread(target=pump, args=(target, c), daemon=True); t.start()
    pump(c, target); t.join(); target.close()

for address, name in servers.items():
    serve(listen(address, 80), http(name))
    serve(listen(address, 443), tls(name))
    serve(listen(address, 7), echo)
dns()
serve(listen(socks_address, 1080), socks)
say("ready")
threading.Event().wait()
