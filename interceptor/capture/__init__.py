"""Captures: read what a scale said on the wire, replay it to our server, record what we serve.

One job per module, lowest layer first:

- `files`: pcap and pcapng files as a stream of frames (dpkt structures, bounded framing);
- `link`: a frame to a TCP segment (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback; IPv4, IPv6);
- `tcp`: sans-I/O reassembly of each direction's byte stream;
- `http`: sans-I/O, tolerant HTTP/1.x message parsing of one direction;
- `conversations`: frames to conversations of request/response exchanges;
- `compat`: is our reply one the scale would accept where it accepted the recorded one;
- `replay`: a capture's requests against our server, measurements read back from the journal;
- `synth`: TCP/IP framing synthesised around recorded bytes, and the file writers;
- `record`: `interceptor serve --capture`, one pcapng file per served connection;
- `cli`: `interceptor replay`.
"""
