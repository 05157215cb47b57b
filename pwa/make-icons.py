#!/usr/bin/env python3
"""Draws the PWA's PNG icons (a hammer on a dark rounded tile) into pwa/www/icons/ with only the standard library.

Usage: python3 pwa/make-icons.py   (the PNGs are committed; rerun only to change the design)
"""
import os
import struct
import zlib

BG = (17, 20, 24)
FG = (242, 140, 40)
HANDLE = (205, 208, 214)


def inside_rounded(x, y, size, radius):
    cx = min(max(x, radius), size - 1 - radius)
    cy = min(max(y, radius), size - 1 - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def pixel(x, y, size, maskable):
    u, v = x / size, y / size
    if not maskable and not inside_rounded(x, y, size, size * 0.22):
        return (0, 0, 0, 0)
    s = 0.8 if maskable else 1.0  # maskable icons keep the drawing inside the 80% safe zone
    u = (u - 0.5) / s + 0.5
    v = (v - 0.5) / s + 0.5
    # hammer head
    if 0.22 <= u <= 0.78 and 0.22 <= v <= 0.40:
        return FG + (255,)
    # handle
    if 0.45 <= u <= 0.55 and 0.40 <= v <= 0.80:
        return HANDLE + (255,)
    # spark: a small diamond at the lower left
    if abs(u - 0.27) + abs(v - 0.66) <= 0.07:
        return FG + (255,)
    return BG + (255,)


def png(size, maskable):
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            rows.extend(pixel(x, y, size, maskable))
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "www", "icons")
    os.makedirs(out, exist_ok=True)
    for name, size, maskable in [("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                 ("icon-maskable-512.png", 512, True), ("apple-touch-icon.png", 180, True)]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(png(size, maskable))
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
