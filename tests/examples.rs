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
