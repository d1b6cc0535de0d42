"""A PXE client in a few lines of scapy: DHCPDISCOVER to the proxy, then the boot-server request on
UDP 4011 with the menu item the offer named (arch 16: a UEFI HTTP Boot DISCOVER instead). Prints JSON:
what the proxy offered and the boot file.
Run inside the client namespace: python -m tests.root.pxe_probe IFACE MAC ARCH CLIENT_IP [ipxe]."""

from __future__ import annotations

import json
import random
import socket
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, srp1  # noqa: E402


def pxe_options(arch: int, ipxe: bool, kind: str, extra=()):
    options = [("message-type", kind), ("vendor_class_id", f"PXEClient:Arch:{arch:05d}:UNDI:002001".encode()),
               (93, arch.to_bytes(2, "big")), (97, b"\x00" + bytes(range(16)))]
    if ipxe:
        options.append(("user_class", b"iPXE"))
    return options + list(extra) + ["end"]


def menu(vendor: bytes) -> list[tuple[int, str]]:
    """PXE option 43, sub-option 9: the boot menu (type, description) items."""
    items, i = [], 0
    while i + 2 <= len(vendor) and vendor[i] != 255:
        code, length = vendor[i], vendor[i + 1]
        value = vendor[i + 2:i + 2 + length]
        if code == 9:
            j = 0
            while j + 3 <= len(value):
                item_type, desc_len = int.from_bytes(value[j:j + 2], "big"), value[j + 2]
                items.append((item_type, value[j + 3:j + 3 + desc_len].decode(errors="replace")))
                j += 3 + desc_len
        i += 2 + length
    return items


def option(packet, name):
    return next((o[1] for o in packet[DHCP].options if isinstance(o, tuple) and o[0] == name), None)


def http_boot(iface: str, mac: str) -> dict:
    """What OVMF's HTTP Boot client does first: DISCOVER with vendor class HTTPClient, arch 16; the
    answer it needs is a proxy offer naming the URL (no second exchange on 4011)."""
    conf.checkIPaddr = False
    chaddr = bytes.fromhex(mac.replace(":", ""))
    options = [("message-type", "discover"), ("vendor_class_id", b"HTTPClient:Arch:00016:UNDI:003000"),
               (93, (16).to_bytes(2, "big")), "end"]
    discover = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=random.getrandbits(32), flags=0x8000) /
                DHCP(options=options))
    offer = srp1(discover, iface=iface, timeout=10, verbose=False)
    if offer is None:
        return {"error": "no offer"}
    return {"server": offer[IP].src, "yiaddr": offer[BOOTP].yiaddr, "file": offer[BOOTP].file.rstrip(b"\0").decode(),
            "vendor_class": (option(offer, "vendor_class_id") or b"").decode()}


def main(iface: str, mac: str, arch: int, client_ip: str, ipxe: bool) -> dict:
    if arch == 16:
        return http_boot(iface, mac)
    conf.checkIPaddr = False
    xid = random.getrandbits(32)
    chaddr = bytes.fromhex(mac.replace(":", ""))
    discover = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=xid, flags=0x8000) /
                DHCP(options=pxe_options(arch, ipxe, "discover")))
    offer = srp1(discover, iface=iface, timeout=10, verbose=False)
    if offer is None:
        return {"error": "no proxy offer"}
    items = menu(option(offer, "vendor_specific") or b"")
    server = offer[IP].src
    result = {"server": server, "menu": items, "offer_file": offer[BOOTP].file.rstrip(b"\0").decode()}
    # With a menu, ask for its first item (sub-option 71); without one (UEFI), ask plainly, as
    # OVMF's PXE client does.
    chosen = [("vendor_specific", b"\x47\x04" + items[0][0].to_bytes(2, "big") + b"\0\0\xff")] if items else []
    request = bytes(BOOTP(ciaddr=client_ip, chaddr=chaddr, xid=xid) / DHCP(options=pxe_options(
        arch, ipxe, "request", chosen)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((client_ip, 68))
        s.settimeout(10)
        s.sendto(request, (server, 4011))
        data, _ = s.recvfrom(4096)
    ack = BOOTP(data)
    result["file"] = ack.file.rstrip(b"\0").decode()
    return result


if __name__ == "__main__":
    iface, mac, arch, client_ip = sys.argv[1:5]
    print(json.dumps(main(iface, mac, int(arch), client_ip, len(sys.argv) > 5 and sys.argv[5] == "ipxe")))
