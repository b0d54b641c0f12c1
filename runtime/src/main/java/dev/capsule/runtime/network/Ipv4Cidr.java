package dev.capsule.runtime.network;

import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;

/**
 * An IPv4 network written as {@code a.b.c.d/len}: the address pool sandboxes draw from. Kept as an int so
 * carving it into per-sandbox blocks is arithmetic, not string work.
 */
public record Ipv4Cidr(int network, int prefixLength) {

    public Ipv4Cidr {
        if (prefixLength < 0 || prefixLength > 32) {
            throw new IllegalArgumentException("prefix length must be 0..32, got " + prefixLength);
        }
        if ((network & mask(prefixLength)) != network) {
            throw new IllegalArgumentException(format(network) + "/" + prefixLength
                    + " has host bits set; use " + format(network & mask(prefixLength)) + "/" + prefixLength);
        }
    }

    /** Parses {@code 10.11.0.0/16}; rejects host bits so a typo does not silently shift the pool. */
    public static Ipv4Cidr parse(String text) {
        int slash = text.indexOf('/');
        if (slash < 0) {
            throw new IllegalArgumentException("not a CIDR (expected a.b.c.d/len): " + text);
        }
        int prefix;
        try {
            prefix = Integer.parseInt(text.substring(slash + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a CIDR prefix length in " + text, e);
        }
        return new Ipv4Cidr(parseAddress(text.substring(0, slash)), prefix);
    }

    /** Number of addresses in the network. */
    public long size() {
        return 1L << (32 - prefixLength);
    }

    /** The address {@code offset} places after the network address. */
    public Inet4Address address(long offset) {
        if (offset < 0 || offset >= size()) {
            throw new IllegalArgumentException("offset " + offset + " is outside " + this);
        }
        return toInet((int) (network + offset));
    }

    public boolean contains(Inet4Address address) {
        return (toInt(address) & mask(prefixLength)) == network;
    }

    /** Whether every address of {@code other} is in this network. */
    public boolean contains(Ipv4Cidr other) {
        return other.prefixLength >= prefixLength && (other.network & mask(prefixLength)) == network;
    }

    /** {@code a.b.c.d} as the network of that one address, {@code a.b.c.d/32}. */
    public static Ipv4Cidr ofAddress(String text) {
        return new Ipv4Cidr(parseAddress(text), 32);
    }

    /** The address as an {@link Inet4Address}; null if {@code text} is not a dotted-quad IPv4 address. */
    public static Inet4Address parseInet(String text) {
        try {
            return toInet(parseAddress(text));
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    @Override
    public String toString() {
        return format(network) + "/" + prefixLength;
    }

    static int mask(int prefixLength) {
        return prefixLength == 0 ? 0 : -1 << (32 - prefixLength);
    }

    static int toInt(Inet4Address address) {
        byte[] b = address.getAddress();
        return (b[0] & 0xff) << 24 | (b[1] & 0xff) << 16 | (b[2] & 0xff) << 8 | (b[3] & 0xff);
    }

    static Inet4Address toInet(int value) {
        byte[] b = {(byte) (value >>> 24), (byte) (value >>> 16), (byte) (value >>> 8), (byte) value};
        try {
            return (Inet4Address) InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw new AssertionError("four bytes are always an IPv4 address", e);
        }
    }

    static String format(int value) {
        return (value >>> 24) + "." + (value >>> 16 & 0xff) + "." + (value >>> 8 & 0xff) + "." + (value & 0xff);
    }

    private static int parseAddress(String text) {
        String[] parts = text.split("\\.", -1);
        if (parts.length != 4) {
            throw new IllegalArgumentException("not an IPv4 address: " + text);
        }
        int value = 0;
        for (String part : parts) {
            if (!part.chars().allMatch(c -> c >= '0' && c <= '9')) {
                throw new IllegalArgumentException("not an IPv4 address: " + text);
            }
            int octet;
            try {
                octet = Integer.parseInt(part);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("not an IPv4 address: " + text, e);
            }
            if (octet < 0 || octet > 255 || part.isEmpty() || part.length() > 3) {
                throw new IllegalArgumentException("not an IPv4 address: " + text);
            }
            value = value << 8 | octet;
        }
        return value;
    }
}
