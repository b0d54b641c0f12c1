# What a program in a sandbox does, for the egress tests. Prints what it got and exits 0, or prints the error to
# stderr and exits 1.
#   client.py http <address> <port> <Host header>      GET / and print the body
#   client.py tls <address> <port> <server name>        TLS handshake with that SNI, print what the server says
#   client.py tcp <address> <port>                      connect and print what the server says first
#   client.py dns <server> <name> [tcp]                 ask <server>:53 for the A record, print the addresses
import socket, ssl, struct, sys

mode, address, arg = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    if mode == "dns":
        query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(
            bytes([len(p)]) + p.encode() for p in arg.split(".")) + b"\x00" + struct.pack(">HH", 1, 1)
        if len(sys.argv) > 4 and sys.argv[4] == "tcp":
            s = socket.create_connection((address, 53), timeout=5)
            s.sendall(struct.pack(">H", len(query)) + query)
            length = struct.unpack(">H", s.recv(2))[0]; data = b""
            while len(data) < length: data += s.recv(length - len(data))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
            s.sendto(query, (address, 53)); data = s.recv(4096)
        rcode = data[3] & 0xf
        if rcode == 3:
            print("NXDOMAIN"); sys.exit(0)
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
        print(" ".join(found) if found else "rcode=%d" % rcode)
        sys.exit(0)
    port = int(arg)
    s = socket.create_connection((address, port), timeout=5)
    s.settimeout(5)
    if mode == "http":
        s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % sys.argv[4]).encode())
    elif mode == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        s = context.wrap_socket(s, server_hostname=sys.argv[4])
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    text = data.decode(errors="replace")
    print(text.split("\r\n\r\n", 1)[-1].strip())
    sys.exit(0 if text else 1)
except SystemExit:
    raise
except Exception as e:
    print(repr(e), file=sys.stderr); sys.exit(1)
