#!/usr/bin/env python3
"""A python-osc peer for evstream's OSC interop tests (tests/osc_interop.rs).

Two modes, both bounded in time:

  osc_peer.py server --mode 1.0|1.1 --count N [--timeout S]
      Runs python-osc's ThreadingOSCTCPServer on 127.0.0.1:0 and prints
      {"port": P} first. Every packet python-osc's server hands to its
      dispatcher is parsed with python-osc's own OscMessage / OscBundle and
      printed as one JSON line (see `describe`). Exits 0 after N packets
      (printing {"event": "done"}), or 2 after the timeout (printing
      {"event": "timeout"}).

  osc_peer.py client --mode 1.0|1.1 --port P
      Connects python-osc's TCPClient to 127.0.0.1:P with that mode, sends
      the scripted messages and the nested bundle of `scripted_packets`,
      prints {"event": "sent", "count": N} and exits 0.

OSC 1.0 framing is an int32 size prefix, OSC 1.1 SLIP with a double END:
python-osc's mode "1.0" and "1.1".

python-osc 1.10 quirks this script works around (and the tests document):
  * its OscMessageBuilder cannot write the 't' (time tag) type, though its
    parser reads it: the message with time tags is assembled from
    python-osc's osc_types writers by hand (and still parsed by OscMessage
    before it is sent);
  * its parser skips tags it does not know ('I', 'c', 'S'...) without
    consuming data, so `describe` marks such tags {"skipped": true};
  * it infers 'h' for -2**31 (bit_length 32) and always 'f' for a float, so
    'i' and 'd' are given explicitly;
  * build_msg(address, "") sends no argument, and it cannot build an empty
    blob (BuildError), so those are built explicitly / not sent;
  * its default Dispatcher drops packets it cannot parse silently and
    sleeps until a bundle's time tag: the server here overrides
    call_handlers_for_packet to report every packet (and parse errors);
  * its OSC 1.1 server splits the received bytes on END END, so a read that
    ends right after a packet's leading END yields an empty "packet": those
    are ignored here.
"""

import argparse
import datetime
import json
import os
import struct
import sys
import threading

from pythonosc import osc_bundle, osc_bundle_builder, osc_message, osc_message_builder
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_tcp_server import ThreadingOSCTCPServer
from pythonosc.parsing import osc_types
from pythonosc.tcp_client import TCPClient

# Tags python-osc 1.10's OscMessage parses (with data or without).
KNOWN_TAGS = set("ihfdsbrmtTFN")
NTP_EPOCH = datetime.datetime(1900, 1, 1)

_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n")
        sys.stdout.flush()


def tag_tree(tags):
    """',i[sf]T' -> ['i', ['s', 'f'], 'T'] (raises ValueError if unbalanced)."""
    root = []
    stack = [root]
    for tag in tags:
        if tag == "[":
            inner = []
            stack[-1].append(inner)
            stack.append(inner)
        elif tag == "]":
            if len(stack) < 2:
                raise ValueError(f"unbalanced ']' in {tags!r}")
            stack.pop()
        else:
            stack[-1].append(tag)
    if len(stack) != 1:
        raise ValueError(f"unbalanced '[' in {tags!r}")
    return root


def float_json(value):
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def describe_value(tag, value):
    """One argument as python-osc decoded it, with its tag."""
    out = {"t": tag}
    if tag in "ih":
        out["v"] = int(value)
    elif tag == "f":
        out["v"] = float_json(value)
        out["bits"] = struct.pack(">f", value).hex()
    elif tag == "d":
        out["v"] = float_json(value)
        out["bits"] = struct.pack(">d", value).hex()
    elif tag == "s":
        out["v"] = value
    elif tag == "b":
        out["v"] = bytes(value).hex()
    elif tag == "r":
        out["v"] = int(value)
    elif tag == "m":
        out["v"] = list(value)
    elif tag == "t":
        # python-osc returns ((utc datetime, fraction), ...) for 't'.
        when, fraction = value
        out["seconds"] = (when - NTP_EPOCH) // datetime.timedelta(seconds=1)
        out["fraction"] = int(fraction)
    elif tag in "TF":
        out["v"] = value
    elif tag == "N":
        out["v"] = value
    else:
        out["v"] = repr(value)
    return out


def describe_args(tree, values):
    """Pairs the tag tree with python-osc's (nested) parameter list."""
    out = []
    values = iter(values)
    for tag in tree:
        if isinstance(tag, list):
            out.append({"t": "[", "v": describe_args(tag, next(values))})
        elif tag not in KNOWN_TAGS:
            out.append({"t": tag, "skipped": True})
        else:
            out.append(describe_value(tag, next(values)))
    leftover = list(values)
    if leftover:
        raise ValueError(f"python-osc decoded more values than tags: {leftover!r}")
    return out


def describe(dgram):
    """A packet, decoded by python-osc, as a JSON-able dict."""
    if osc_bundle.OscBundle.dgram_is_bundle(dgram):
        bundle = osc_bundle.OscBundle(dgram)
        seconds, fraction = struct.unpack(">II", dgram[8:16])
        timestamp = bundle.timestamp
        return {
            "kind": "bundle",
            "seconds": seconds,
            "fraction": fraction,
            "py_timestamp": timestamp,
            "elements": [describe(element.dgram) for element in bundle],
        }
    message = osc_message.OscMessage(dgram)
    address, index = osc_types.get_string(dgram, 0)
    tags = ","
    if dgram[index:]:
        tags, _ = osc_types.get_string(dgram, index)
    return {
        "kind": "message",
        "address": message.address,
        "tags": tags,
        "args": describe_args(tag_tree(tags[1:]), message.params),
    }


class RecordingDispatcher(Dispatcher):
    """Reports every packet python-osc's TCP server received."""

    def __init__(self, count):
        super().__init__(strict_timing=False)
        self.count = count
        self.received = 0
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def call_handlers_for_packet(self, data, client_address):
        if not data:
            return []
        try:
            out = describe(data)
        except Exception as err:  # report, never hide, a parse failure
            out = {"kind": "error", "error": repr(err), "raw": bytes(data).hex()}
        out["len"] = len(data)
        emit(out)
        with self.lock:
            self.received += 1
            if self.received >= self.count:
                self.finished.set()
        return []


def run_server(mode, count, timeout):
    dispatcher = RecordingDispatcher(count)
    server = ThreadingOSCTCPServer(("127.0.0.1", 0), dispatcher, mode=mode)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    emit({"port": server.server_address[1], "mode": mode})
    done = dispatcher.finished.wait(timeout)
    emit({"event": "done" if done else "timeout", "received": dispatcher.received})
    server.shutdown()
    server.server_close()
    sys.stdout.flush()
    os._exit(0 if done else 2)


def built(address, args):
    """A message from explicit (value, tag) pairs with python-osc's builder."""
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for value, tag in args:
        builder.add_arg(value, tag)
    return builder.build()


def time_tag_message():
    """'/interop/time' ,tTt — assembled by hand: the builder has no 't'."""
    dgram = osc_types.write_string("/interop/time")
    dgram += osc_types.write_string(",tTt")
    dgram += struct.pack(">II", 3908988800, 0x80000000)
    dgram += struct.pack(">II", 0, 1)
    # python-osc parses it back itself, so it is a message python-osc accepts.
    return osc_message.OscMessage(dgram)


def scripted_packets():
    """What the client sends; tests/osc_interop.rs expects exactly this."""
    b = osc_message_builder.OscMessageBuilder
    packets = [
        built(
            "/interop/ints",
            [
                (0, b.ARG_TYPE_INT),
                (-1, b.ARG_TYPE_INT),
                (2147483647, b.ARG_TYPE_INT),
                (-2147483648, b.ARG_TYPE_INT),
                (1 << 40, b.ARG_TYPE_INT64),
                (-(1 << 62), b.ARG_TYPE_INT64),
                (9223372036854775807, b.ARG_TYPE_INT64),
            ],
        ),
        built(
            "/interop/floats",
            [
                (1.5, b.ARG_TYPE_FLOAT),
                (0.1, b.ARG_TYPE_FLOAT),
                (float("inf"), b.ARG_TYPE_FLOAT),
                (0.1, b.ARG_TYPE_DOUBLE),
                (-1e300, b.ARG_TYPE_DOUBLE),
                (float("-inf"), b.ARG_TYPE_DOUBLE),
            ],
        ),
        built(
            "/interop/strings",
            [
                ("apple", b.ARG_TYPE_STRING),
                ("", b.ARG_TYPE_STRING),
                ("abc", b.ARG_TYPE_STRING),
                ("four", b.ARG_TYPE_STRING),
                ("h\u00e9llo \u2713", b.ARG_TYPE_STRING),
                (b"abc", b.ARG_TYPE_BLOB),
                (bytes(range(256)), b.ARG_TYPE_BLOB),
                (b"\xc0\xdb\xc0", b.ARG_TYPE_BLOB),
            ],
        ),
        built(
            "/interop/misc",
            [
                (0x11223344, b.ARG_TYPE_RGBA),
                ((0, 0x90, 60, 100), b.ARG_TYPE_MIDI),
                (True, b.ARG_TYPE_TRUE),
                (False, b.ARG_TYPE_FALSE),
                (None, b.ARG_TYPE_NIL),
                ([6, [("x"), False], 8.5], ["i", ["s", "F"], "d"]),
                ([], []),
            ],
        ),
        time_tag_message(),
        built("/interop/empty", []),
    ]
    inner = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    inner.add_content(built("/bundle/b", [(True, "T"), (None, "N")]))
    outer = osc_bundle_builder.OscBundleBuilder(1700000000.5)
    outer.add_content(built("/bundle/a", [(1, "i"), ("x", "s")]))
    outer.add_content(inner.build())
    outer.add_content(built("/bundle/c", [(2.0, "f")]))
    packets.append(outer.build())
    return packets


def run_client(mode, port):
    packets = scripted_packets()
    client = TCPClient("127.0.0.1", port, mode=mode, timeout=20.0)
    for packet in packets:
        client.send(packet)
    client.close()
    emit({"event": "sent", "count": len(packets)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--mode", choices=["1.0", "1.1"], required=True)
    server.add_argument("--count", type=int, required=True)
    server.add_argument("--timeout", type=float, default=20.0)
    client = sub.add_parser("client")
    client.add_argument("--mode", choices=["1.0", "1.1"], required=True)
    client.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.role == "server":
        run_server(args.mode, args.count, min(args.timeout, 60.0))
    else:
        run_client(args.mode, args.port)


if __name__ == "__main__":
    main()
