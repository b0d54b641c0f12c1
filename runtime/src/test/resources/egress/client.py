# What a program in a sandbox does, for the egress tests. Prints what it got and exits 0, or prints the error to
# stderr and exits 1. Connections and answers time out after $CLIENT_TIMEOUT seconds (default 5).
#   client.py http <address> <port> <Host header>      GET / and print the body
#   client.py tls <address> <port> <server name>        TLS handshake with that SNI, print what the server says
#   client.py tcp <address> <port>                      connect and print what the server says first
#   client.py echo <address> <port>                     send "ping" (neither TLS nor HTTP), print the echo
#   client.py dns <server> <name> [tcp]                 ask <server>:53 for the A record, print the addresses
#   client.py rawdns <source> <server> <name>           send that query in a hand-made IPv4 packet from <source>
#                                                        (needs CAP_NET_RAW), print "sent"
#   client.py hold <address> <port> <Host or -> <file>  keep a connection to an echo server: send the HTTP head
#                                                        first unless "-", then one ping every 0.2 s; append
#                                                        "ok <n>" per echo and finally "cut <error>" to <file>
#   client.py batch <probe> ...                         run the probes above (each one argument, words separated by
#                                                        spaces) at the same time; print one line per probe, in
#                                                        order: "ok <what it printed>" or "blocked <error>"
import os, socket, ssl, struct, sys, threading, time

TIMEOUT = float(os.environ.get("CLIENT_TIMEOUT", "5"))


def query(name):
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00" + struct.pack(">HH", 1, 1)


def dns(server, name, tcp):
    q = query(name)
    if tcp:
        s = socket.create_connection((server, 53), timeout=TIMEOUT)
        s.sendall(struct.pack(">H", len(q)) + q)
        length = struct.unpack(">H", s.recv(2))[0]; data = b""
        while len(data) < length: data += s.recv(length - len(data))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(TIMEOUT)
        s.sendto(q, (server, 53)); data = s.recv(4096)
    rcode = data[3] & 0xf
    if rcode == 3:
        return "NXDOMAIN"
    answers = struct.unpack(">H", data[6:8])[0]
    i = 12
    while data[i]: i += 1 + data[i]
    i += 5
    found = []
    for _ in range(answers):
        if data[i] & 0xc0 == 0xc0: i += 2
        else:
            while data[i]: i += 1 + data[i]
            i += 1
        rtype, _, _, length = struct.unpack(">HHIH", data[i:i + 10]); i += 10
        if rtype == 1: found.append(socket.inet_ntoa(data[i:i + 4]))
        i += length
    return " ".join(found) if found else "rcode=%d" % rcode


def rawdns(source, server, name):
    payload = query(name)
    udp = struct.pack(">HHHH", 33333, 53, 8 + len(payload), 0) + payload  # checksum 0: none, allowed in IPv4
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(source),
                     socket.inet_aton(server))  # the kernel fills in the id and checksum
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + udp, (server, 0))
    return "sent"


def head(host):
    return ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()


def hold(address, port, host, path):
    with open(path, "a", buffering=1) as log:
        try:
            s = socket.create_connection((address, int(port)), timeout=TIMEOUT)
            if host != "-":
                first = head(host); s.sendall(first); got = b""
                while len(got) < len(first):
                    chunk = s.recv(4096)
                    if not chunk: raise EOFError("closed")
                    got += chunk
            n = 0
            while True:
                n += 1; line = b"ping %d\n" % n
                s.sendall(line)
                if s.recv(100) != line: raise EOFError("closed")
                log.write("ok %d\n" % n)
                time.sleep(0.2)
        except Exception as e:
            log.write("cut %r\n" % e)


def probe(argv):
    mode, address, arg = argv[0], argv[1], argv[2]
    if mode == "dns":
        return dns(address, arg, len(argv) > 3 and argv[3] == "tcp")
    if mode == "rawdns":
        return rawdns(address, arg, argv[3])
    if mode == "hold":
        return hold(address, arg, argv[3], argv[4])
    s = socket.create_connection((address, int(arg)), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    if mode == "http":
        s.sendall(head(argv[3]))
    elif mode == "echo":
        s.sendall(b"ping\n")
        return s.recv(100).decode().strip()
    elif mode == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        s = context.wrap_socket(s, server_hostname=argv[3])
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    if not data:
        raise EOFError("closed without a word")
    return data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()


def batch(probes):
    results = [None] * len(probes)
    def run(i):
        try:
            results[i] = "ok " + probe(probes[i].split())
        except Exception as e:
            results[i] = "blocked %r" % e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(probes))]
    for t in threads: t.start()
    for t in threads: t.join()
    print("\n".join(results))


if sys.argv[1] == "batch":
    batch(sys.argv[2:])
    sys.exit(0)
try:
    print(probe(sys.argv[1:]))
except Exception as e:
    print(repr(e), file=sys.stderr); sys.exit(1)
