//! The IOStream-style read helpers (`read_until_delimiter`, `read_bytes`,
//! `read_until_close`, `read_until_match`) run on a connection fed the same
//! bytes in different chunkings — all at once, split where the input
//! says, one byte per append — must end the same way: the same frame or
//! error, the same bytes taken by the connection and the same bytes left
//! in its input buffer. The outcome must match a model of the helper
//! (the first delimiter, `max_bytes`, `max_buffer_size`), no byte may be
//! lost or duplicated, and a matcher read looking for the delimiter must
//! agree with the delimiter read.

use evstream::seam::{read_chunked, Outcome, ReadHelper};
use evstream::{Error, Limit, TcpOptions};

use super::input::Input;

/// The helper and its parameters, read from the input.
#[derive(Debug, Clone)]
enum Helper {
    Delimiter(Vec<u8>, usize),
    Match(Vec<u8>, usize),
    Exactly(usize),
    UntilClose,
}

/// The end of the first occurrence of `needle` in `haystack`, found the
/// naive way (a model independent of the library's memchr search).
fn first_end(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| at + needle.len())
}

fn run(options: &TcpOptions, helper: &Helper, chunks: &[&[u8]], end: bool) -> Outcome {
    match helper {
        Helper::Delimiter(delimiter, max) => {
            read_chunked(options, ReadHelper::Delimiter(delimiter, *max), chunks, end)
        }
        Helper::Match(delimiter, max) => {
            let mut matcher = |bytes: &[u8]| first_end(bytes, delimiter);
            read_chunked(options, ReadHelper::Match(*max, &mut matcher), chunks, end)
        }
        Helper::Exactly(n) => read_chunked(options, ReadHelper::Exactly(*n), chunks, end),
        Helper::UntilClose => read_chunked(options, ReadHelper::UntilClose, chunks, end),
    }
}

/// The outcome, rendered so runs can be compared: the result and what a
/// next read would see (what is buffered, then what the loop has not
/// read yet). How much the loop read before the frame was complete
/// depends on the chunking, so it is not compared.
fn render(outcome: &Outcome, data: &[u8]) -> String {
    let mut rest = outcome.buffered.clone();
    rest.extend_from_slice(&data[outcome.fed..]);
    format!("{:?} then {:?}", outcome.result, rest)
}

/// The outcome agrees with what the helper means.
fn check_model(helper: &Helper, data: &[u8], end: bool, max_buffer: usize, outcome: &Outcome) {
    let fed = &data[..outcome.fed];
    // Nothing lost, nothing duplicated: the frame and what is left are
    // what the connection took, in order.
    let mut joined = match &outcome.result {
        Some(Ok(frame)) => frame.to_vec(),
        _ => Vec::new(),
    };
    joined.extend_from_slice(&outcome.buffered);
    assert_eq!(joined, fed, "frame + buffered != bytes taken");
    assert!(outcome.fed <= data.len(), "took more than the peer sent");
    match helper {
        Helper::Delimiter(delimiter, max) | Helper::Match(delimiter, max) => {
            let first = first_end(data, delimiter);
            let within = |n: usize| first.is_some_and(|e| e <= n);
            match &outcome.result {
                Some(Ok(frame)) => {
                    assert_eq!(Some(frame.len()), first, "not the first delimiter");
                    assert!(frame.len() <= *max, "frame over max_bytes");
                }
                Some(Err(Error::LimitExceeded {
                    what: Limit::FrameLength,
                    limit,
                })) => {
                    assert_eq!(limit, max);
                    assert!(!within(*max), "a frame within max_bytes refused");
                }
                Some(Err(Error::LimitExceeded {
                    what: Limit::InputBuffer,
                    limit,
                })) => {
                    assert_eq!(*limit, max_buffer);
                    assert!(
                        !within((*max).min(max_buffer.saturating_sub(1))),
                        "a frame that fits refused"
                    );
                }
                Some(Err(Error::UnexpectedEof { received, .. })) => {
                    assert!(end && outcome.fed == data.len(), "EOF before the end");
                    assert!(first.is_none(), "EOF though the delimiter came");
                    assert!(*received == data.len() && data.len() < *max);
                }
                Some(Err(err)) => panic!("unexpected error {err:?}"),
                None => {
                    assert!(first_end(fed, delimiter).is_none_or(|e| e > *max));
                    assert!(outcome.fed < *max, "waits with max_bytes taken");
                    assert!(!end || outcome.fed < data.len(), "waits after EOF");
                }
            }
        }
        Helper::Exactly(n) => match &outcome.result {
            Some(Ok(frame)) => assert_eq!(&frame[..], &data[..*n]),
            Some(Err(Error::UnexpectedEof { needed, received })) => {
                assert!(end && outcome.fed == data.len() && data.len() < *n);
                assert_eq!((*needed, *received), (*n, data.len()));
            }
            Some(Err(err)) => panic!("unexpected error {err:?}"),
            None => assert!(outcome.fed < *n && (!end || outcome.fed < data.len())),
        },
        Helper::UntilClose => match &outcome.result {
            Some(Ok(frame)) => {
                assert!(end);
                assert_eq!(&frame[..], data);
            }
            Some(Err(Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit,
            })) => {
                assert_eq!(*limit, max_buffer);
                assert!(data.len() >= max_buffer, "refused though it fits");
            }
            Some(Err(err)) => panic!("unexpected error {err:?}"),
            None => assert!(!end || outcome.fed < data.len()),
        },
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.byte();
    let end = input.bool();
    let max_buffer = 1 + usize::from(input.u16() % 2048);
    let watermark = 1 + usize::from(input.u16() % 2048);
    let delimiter = {
        let len = 1 + usize::from(input.byte() % 4);
        input.take(len).to_vec()
    };
    if delimiter.is_empty() {
        return;
    }
    let max = usize::from(input.u16() % 2100);
    let helper = match kind % 4 {
        0 => Helper::Delimiter(delimiter.clone(), max),
        1 => Helper::Match(delimiter.clone(), max),
        2 => Helper::Exactly(1 + max % max_buffer),
        _ => Helper::UntilClose,
    };
    let len = usize::from(input.u16() % 4096);
    let bytes = input.take(len).to_vec();
    // The split: chunk lengths from what is left (0 ends a chunk of one
    // byte), the last chunk whatever remains.
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = if input.is_empty() {
            rest.len()
        } else {
            1 + usize::from(input.byte())
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    let options = TcpOptions::new()
        .max_buffer_size(max_buffer)
        .read_watermarks(0, watermark);

    let whole = run(&options, &helper, &[&bytes], end);
    check_model(&helper, &bytes, end, max_buffer, &whole);
    let split = run(&options, &helper, &chunks, end);
    check_model(&helper, &bytes, end, max_buffer, &split);
    assert_eq!(
        render(&split, &bytes),
        render(&whole, &bytes),
        "split {helper:?}"
    );
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    let single = run(&options, &helper, &bytewise, end);
    assert_eq!(
        render(&single, &bytes),
        render(&whole, &bytes),
        "byte by byte {helper:?}"
    );
    // A matcher for the delimiter ends like the delimiter read.
    if let Helper::Delimiter(delimiter, max) = &helper {
        let matched = run(
            &options,
            &Helper::Match(delimiter.clone(), *max),
            &chunks,
            end,
        );
        assert_eq!(
            render(&matched, &bytes),
            render(&whole, &bytes),
            "matcher vs delimiter"
        );
    }
}
