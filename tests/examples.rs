//! The examples, run as tests: each example file is included as a module so
//! its own code is what gets exercised.

#[path = "../examples/http_get.rs"]
mod http_get;

#[path = "../examples/echo_server.rs"]
mod echo_server;

/// http_get against a local server: the status line and every byte.
#[test]
fn http_get_reads_until_close_from_a_local_server() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let port = http_get::serve_once(body.clone()).unwrap();
    let response = http_get::get("127.0.0.1", port, "/index.html").unwrap();
    assert_eq!(response.status_line, "HTTP/1.0 200 OK");
    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    assert_eq!(response.bytes.len(), head.len() + body.len());
    assert_eq!(&response.bytes[..head.len()], head.as_bytes());
    assert_eq!(&response.bytes[head.len()..], &body[..]);
}

/// http_get against a port with no listener: a clear refusal, not a hang.
#[test]
fn http_get_reports_a_refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = http_get::get("127.0.0.1", port, "/").unwrap_err();
    assert!(matches!(err, evstream::Error::Refused), "{err:?}");
}

/// The stream-mode echo server echoes 4 MiB intact through its
/// notification loop.
#[test]
fn echo_server_echoes_everything() {
    assert_eq!(
        echo_server::self_test(4 * 1024 * 1024).unwrap(),
        4 * 1024 * 1024
    );
}

#[path = "../examples/line_chat.rs"]
mod line_chat;

/// The line chat: each of three clients hears the welcome and both lines of
/// each other client, and nothing of its own.
#[test]
fn line_chat_relays_every_line_to_the_others() {
    let heard = line_chat::self_test().unwrap();
    assert_eq!(heard.len(), 3);
    for (client, lines) in heard.iter().enumerate() {
        assert!(lines[0].starts_with("welcome, 127.0.0.1:"), "{lines:?}");
        let mut said: Vec<String> = lines[1..]
            .iter()
            .map(|line| line.split_once(": ").expect("sender prefix").1.to_string())
            .collect();
        said.sort();
        let mut expected: Vec<String> = (0..3)
            .filter(|&other| other != client)
            .flat_map(|other| [format!("bye from {other}"), format!("hello from {other}")])
            .collect();
        expected.sort();
        assert_eq!(said, expected, "client {client}");
    }
}

#[path = "../examples/godot_style.rs"]
mod godot_style;

/// Whether `seen` is `expected` with some entries left out, in order.
fn is_subsequence<T: PartialEq>(seen: &[T], expected: &[T]) -> bool {
    let mut rest = expected.iter();
    seen.iter().all(|item| rest.any(|wanted| wanted == item))
}

/// The Godot-style game loop: typed values arrive intact both ways, the
/// statuses move forward in Godot's order, the disconnect reads as
/// FILE_EOF and a closed port as ERROR / CONNECT_FAILED.
#[test]
fn godot_style_game_loop_exchanges_typed_values() {
    use evstream::peer::{PeerStatus, SocketError};
    use godot_style::Message;

    let summary = godot_style::self_test().unwrap();
    assert_eq!(
        summary.server_got,
        Message {
            id: 42,
            x: 12.75,
            name: "Ada ✓".to_string()
        }
    );
    assert_eq!(
        summary.client_got,
        Message {
            id: 84,
            x: 13.0,
            name: "welcome, Ada ✓".to_string()
        }
    );

    // Connecting may be over before the first frame looks: it is optional.
    let client = &summary.client_statuses;
    assert_eq!(client.first(), Some(&PeerStatus::None), "{client:?}");
    assert_eq!(client.last(), Some(&PeerStatus::None), "{client:?}");
    assert!(client.contains(&PeerStatus::Connected), "{client:?}");
    assert!(
        is_subsequence(
            client,
            &[
                PeerStatus::None,
                PeerStatus::Connecting,
                PeerStatus::Connected,
                PeerStatus::None
            ]
        ),
        "{client:?}"
    );
    assert_eq!(
        summary.server_peer_statuses,
        [PeerStatus::Connected, PeerStatus::None]
    );
    assert_eq!(summary.server_saw_end, SocketError::FileEof);

    let refused = &summary.refused_statuses;
    assert_eq!(refused.first(), Some(&PeerStatus::None), "{refused:?}");
    assert_eq!(refused.last(), Some(&PeerStatus::Error), "{refused:?}");
    assert!(
        is_subsequence(
            refused,
            &[PeerStatus::None, PeerStatus::Connecting, PeerStatus::Error]
        ),
        "{refused:?}"
    );
    assert_eq!(summary.refused_code, SocketError::ConnectFailed);
    assert_eq!(summary.refused_code.as_str(), "CONNECT_FAILED");
}

#[path = "../examples/touchdesigner_osc.rs"]
mod touchdesigner_osc;

/// TouchDesigner's `Peer`: the OSC server decodes what `send_osc` sent,
/// typed by the rules of TouchDesigner's `sendOSC` documentation
/// (seed 004), and the raw server gets `send_bytes` and `send` byte for
/// byte.
#[test]
fn touchdesigner_osc_types_values_as_touchdesigner_documents() {
    use bytes::Bytes;
    use evstream::osc::{OscMessage, OscPacket, OscTime, OscType};
    use evstream::peer::SocketError;
    use touchdesigner_osc::type_tags;

    let report = touchdesigner_osc::self_test().unwrap();

    let message = |packet: &OscPacket| -> OscMessage {
        match packet {
            OscPacket::Message(msg) => msg.clone(),
            other => panic!("expected a message, got {other:?}"),
        }
    };
    assert_eq!(report.packets.len(), 5, "{:#?}", report.packets);

    // Default options (useNonStandardTypes=True, use64BitPrecision=False):
    // int 1 fits in 32 bits → i; bytes → blob b; str → s; True → T;
    // None → N (nil); float('inf') → I (Infinitum). A list becomes an OSC
    // array (evstream's choice: the seed does not say).
    let plain = message(&report.packets[0]);
    assert_eq!(plain.addr, "/abc");
    assert_eq!(type_tags(&plain.args), ",ibs[iii]TNI");
    assert_eq!(
        plain.args,
        [
            OscType::Int(1),
            OscType::Blob(Bytes::from_static(b"abc")),
            OscType::String("apple".into()),
            OscType::Array(vec![OscType::Int(6), OscType::Int(7), OscType::Int(8)]),
            OscType::Bool(true),
            OscType::Nil,
            OscType::Inf,
        ]
    );

    // asBundle=True: one bundle holding both messages; an int too big for
    // 32 bits is 64-bit (h) with non-standard types; a float is 32-bit (f).
    let OscPacket::Bundle(bundle) = &report.packets[1] else {
        panic!("expected a bundle, got {:?}", report.packets[1]);
    };
    assert_eq!(bundle.timetag, OscTime::IMMEDIATELY);
    assert_eq!(bundle.content.len(), 2);
    assert_eq!(message(&bundle.content[0]), plain);
    let big = message(&bundle.content[1]);
    assert_eq!(big.addr, "/big");
    assert_eq!(big.args, [OscType::Long(1 << 40), OscType::Float(0.5)]);

    // use64BitPrecision=True: always 64-bit integers (h) and floats (d);
    // infinity stays Infinitum, True and None stay T and N.
    let wide = message(&report.packets[2]);
    assert_eq!(wide.addr, "/abc");
    assert_eq!(type_tags(&wide.args), ",hbs[hhh]TNI");
    assert_eq!(wide.args[0], OscType::Long(1));
    let precise = message(&report.packets[3]);
    assert_eq!(precise.addr, "/precise");
    assert_eq!(precise.args, [OscType::Double(2.5)]);

    // useNonStandardTypes=False: True → i 1, None → i 0, infinity → f;
    // the list's elements are sent inline.
    let standard = message(&report.packets[4]);
    assert_eq!(type_tags(&standard.args), ",ibsiiiiif");
    assert_eq!(&standard.args[6..8], [OscType::Int(1), OscType::Int(0)]);
    assert_eq!(standard.args[8], OscType::Float(f32::INFINITY));
    // ...and 2**40 without non-standard types is refused, not truncated.
    assert_eq!(report.refused_osc, Some(SocketError::InvalidParameter));

    // send_osc counts the framed bytes queued: with OSC 1.1 SLIP framing
    // and no END or ESC inside, the packet plus two END bytes.
    assert_eq!(report.osc_sent.len(), 4);
    assert_eq!(
        report.osc_sent[0],
        evstream::osc::encode(&report.packets[0]).unwrap().len() + 2
    );

    assert_eq!(report.close_results, [true, false]);

    // The server's view of its peers: address, hostname, owner.
    for peer in [&report.osc_peer, &report.raw_peer] {
        let peer = peer.as_ref().expect("peer info");
        assert!(peer.addr.ip().is_loopback(), "{peer:?}");
        assert_eq!(peer.hostname, "127.0.0.1");
        assert!(peer.owned_by_server, "{peer:?}");
    }

    // sendBytes('TYPE', 23, 255, 12, 0x34, b'\x01\x00\x02\x00\x03\x00\x00\x00')
    // then send('Hello', 'World', terminator='\r\n').
    assert_eq!(report.raw_sent, [16, 14]);
    assert_eq!(
        report.raw,
        b"TYPE\x17\xff\x0c\x34\x01\x00\x02\x00\x03\x00\x00\x00Hello\r\nWorld\r\n"
    );
}

#[cfg(feature = "tls")]
#[path = "../examples/https_get.rs"]
mod https_get;

/// https_get against its local HTTPS server: the status line, every byte
/// of the body whether framed by its length or in chunks, and what TLS
/// negotiated (ALPN http/1.1, the server's certificate).
#[cfg(feature = "tls")]
#[test]
fn https_get_fetches_from_a_local_https_server() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let server = https_get::LocalServer::start(body.clone()).unwrap();
    for path in ["/index.html", "/chunked"] {
        let tls = evstream::TlsClientOptions::new(server.client_config.clone(), "localhost")
            .unwrap()
            .alpn_protocols(["http/1.1"]);
        let response =
            futures_lite::future::block_on(https_get::get(&server.addr, "localhost", path, tls))
                .unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 200 OK", "{path}");
        assert!(response.head.ends_with(b"\r\n\r\n"), "{path}");
        assert_eq!(response.body.len(), body.len(), "{path}");
        assert!(response.body == body, "{path}: the body differs");
        assert_eq!(
            response.tls.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{path}"
        );
        assert_eq!(response.tls.peer_certificates().len(), 1, "{path}");
    }
}

/// https_get refuses a server whose certificate it does not trust, and
/// parses the URLs of its command line.
#[cfg(feature = "tls")]
#[test]
fn https_get_refuses_an_untrusted_server_and_parses_urls() {
    let server = https_get::LocalServer::start(b"secret".to_vec()).unwrap();
    let other = https_get::LocalServer::start(Vec::new()).unwrap();
    // `other`'s roots do not include `server`'s certificate.
    let tls = evstream::TlsClientOptions::new(other.client_config.clone(), "localhost").unwrap();
    let err = futures_lite::future::block_on(https_get::get(&server.addr, "localhost", "/", tls))
        .unwrap_err();
    assert!(
        matches!(
            err,
            evstream::Error::Tls {
                kind: evstream::TlsErrorKind::CertificateInvalid,
                ..
            }
        ),
        "{err:?}"
    );

    let parse = https_get::parse_url;
    assert_eq!(
        parse("https://example.com"),
        Some(("example.com".into(), 443, "/".into()))
    );
    assert_eq!(
        parse("https://example.com:8443/a/b?c=d"),
        Some(("example.com".into(), 8443, "/a/b?c=d".into()))
    );
    assert_eq!(
        parse("https://[::1]:8443/x"),
        Some(("::1".into(), 8443, "/x".into()))
    );
    assert_eq!(
        parse("https://[::1]/"),
        Some(("::1".into(), 443, "/".into()))
    );
    assert_eq!(parse("http://example.com/"), None);
    assert_eq!(parse("https://:443/"), None);
}

#[path = "../examples/readme_async.rs"]
mod readme_async;

/// The README's async example: the client gets its bytes back.
#[test]
fn readme_async_example_echoes() {
    assert_eq!(readme_async::echo_once().unwrap(), b"ping");
}
