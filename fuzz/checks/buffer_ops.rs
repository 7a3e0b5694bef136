//! `Buffer` against a `Vec<u8>` model: any sequence of operations leaves
//! the same bytes, returns what the model says, and keeps the invariants
//! (length, no empty chunk, zero-copy where documented).

use std::io::{IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use evstream::{Buffer, Eol};

use super::input::Input;

const STYLES: [Eol; 5] = [Eol::Lf, Eol::CrLf, Eol::CrLfStrict, Eol::Nul, Eol::Any];

/// Bytes that matter to searches and line ends, so they occur often.
const ALPHABET: &[u8] = b"ab\r\n\0\xc0\xdbx";

fn pick(input: &mut Input<'_>, len: usize) -> usize {
    usize::from(input.u16()) % (len + 1)
}

/// `n` bytes from the input mapped onto a small alphabet (or raw).
fn bytes(input: &mut Input<'_>, n: usize) -> Vec<u8> {
    let raw = input.bool();
    input
        .take(n)
        .iter()
        .map(|&b| {
            if raw {
                b
            } else {
                ALPHABET[usize::from(b) % ALPHABET.len()]
            }
        })
        .collect()
}

pub fn model_search(model: &[u8], start: usize, needle: &[u8]) -> Option<usize> {
    if start > model.len() {
        return None;
    }
    (start..=model.len().checked_sub(needle.len())?)
        .find(|&i| &model[i..i + needle.len()] == needle)
}

pub fn model_find_eol(model: &[u8], eol: Eol) -> Option<(usize, usize)> {
    let pos = |f: &dyn Fn(u8) -> bool| model.iter().position(|&b| f(b));
    match eol {
        Eol::Lf => pos(&|b| b == b'\n').map(|i| (i, 1)),
        Eol::Nul => pos(&|b| b == 0).map(|i| (i, 1)),
        Eol::CrLfStrict => model.windows(2).position(|w| w == b"\r\n").map(|i| (i, 2)),
        Eol::CrLf => pos(&|b| b == b'\n').map(|i| {
            if i > 0 && model[i - 1] == b'\r' {
                (i - 1, 2)
            } else {
                (i, 1)
            }
        }),
        Eol::Any => {
            let is_eol = |b: u8| b == b'\r' || b == b'\n';
            let i = pos(&is_eol)?;
            let run = model[i..].iter().take_while(|&&b| is_eol(b)).count();
            Some((i, run))
        }
    }
}

fn check_invariants(buf: &Buffer, model: &[u8]) {
    assert_eq!(buf.len(), model.len());
    assert_eq!(buf.is_empty(), model.is_empty());
    assert!(buf.chunk_count() <= buf.len());
    assert!(buf.chunks().all(|c| !c.is_empty()), "empty chunk");
    assert_eq!(buf.chunks().map(<[u8]>::len).sum::<usize>(), buf.len());
    assert!(*buf == *model, "contents differ from the model");
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mut buf = Buffer::new();
    let mut model: Vec<u8> = Vec::new();
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let len = model.len();
        match input.byte() % 24 {
            0 => {
                let n = usize::from(input.byte() % 32);
                let piece = bytes(&mut input, n);
                buf.push(Bytes::copy_from_slice(&piece));
                model.extend_from_slice(&piece);
            }
            1 => {
                let n = usize::from(input.byte() % 32);
                let piece = bytes(&mut input, n);
                buf.extend_from_slice(&piece);
                model.extend_from_slice(&piece);
            }
            2 => {
                // Large appends cross the coalescing limit (the total stays
                // small enough to compare after every step).
                let n = (usize::from(input.u16()) % 20_000).min(100_000usize.saturating_sub(len));
                let fill = ALPHABET[usize::from(input.byte()) % ALPHABET.len()];
                let piece = vec![fill; n];
                if input.bool() {
                    buf.extend_from_slice(&piece);
                } else {
                    buf.push(Bytes::from(piece.clone()));
                }
                model.extend_from_slice(&piece);
            }
            3 => {
                let n = pick(&mut input, len);
                let front = buf.front_chunk().cloned();
                let got = buf.split_to(n);
                assert_eq!(got, model[..n]);
                if let Some(front) = front {
                    if n > 0 && n <= front.len() {
                        assert_eq!(got.as_ptr(), front.as_ptr(), "split_to copied");
                    }
                }
                model.drain(..n);
            }
            4 => {
                let n = pick(&mut input, len);
                buf.drain(n);
                model.drain(..n);
            }
            5 => {
                let mut dst = vec![0u8; usize::from(input.byte())];
                let got = buf.read(&mut dst);
                let want = dst.len().min(len);
                assert_eq!(got, want);
                assert_eq!(dst[..got], model[..want]);
                model.drain(..want);
            }
            6 => {
                let offset = pick(&mut input, len + 1);
                let mut dst = vec![0u8; usize::from(input.byte())];
                let got = buf.copy_out_from(offset, &mut dst);
                let want = model.get(offset..).unwrap_or_default();
                let want = &want[..want.len().min(dst.len())];
                assert_eq!(&dst[..got], want);
                let got = buf.copy_out(&mut dst);
                assert_eq!(dst[..got], model[..got.min(len)]);
                assert_eq!(got, dst.len().min(len));
            }
            7 => {
                let start = pick(&mut input, len + 1);
                let needle = if input.bool() && len > 0 {
                    let from = pick(&mut input, len - 1);
                    let n = usize::from(input.byte() % 80);
                    model[from..(from + n).min(len)].to_vec()
                } else {
                    let n = usize::from(input.byte() % 80);
                    bytes(&mut input, n)
                };
                assert_eq!(
                    buf.search_from(start, &needle),
                    model_search(&model, start, &needle),
                    "search_from({start}, {needle:?})"
                );
                assert_eq!(buf.search(&needle), model_search(&model, 0, &needle));
            }
            8 => {
                let b = ALPHABET[usize::from(input.byte()) % ALPHABET.len()];
                assert_eq!(buf.find_byte(b), model.iter().position(|&x| x == b));
            }
            9 => {
                let eol = STYLES[usize::from(input.byte()) % STYLES.len()];
                assert_eq!(buf.find_eol(eol), model_find_eol(&model, eol));
                let start = pick(&mut input, len);
                if model_find_eol(&model[..start], eol).is_none() {
                    assert_eq!(
                        buf.find_eol_from(start, eol),
                        model_find_eol(&model, eol),
                        "find_eol_from({start}, {eol:?})"
                    );
                }
            }
            10 => {
                let eol = STYLES[usize::from(input.byte()) % STYLES.len()];
                let front = buf.front_chunk().cloned();
                match model_find_eol(&model, eol) {
                    Some((line, term)) => {
                        let got = buf.read_line(eol).expect("a line");
                        assert_eq!(got, model[..line]);
                        if let Some(front) = front {
                            if line > 0 && line <= front.len() {
                                assert_eq!(got.as_ptr(), front.as_ptr(), "read_line copied");
                            }
                        }
                        model.drain(..line + term);
                    }
                    None => assert_eq!(buf.read_line(eol), None),
                }
            }
            11 => {
                let n = pick(&mut input, len);
                assert_eq!(buf.contiguous(n), &model[..n]);
                if n > 0 {
                    assert!(buf.front_chunk().expect("a chunk").len() >= n);
                }
            }
            12 => match buf.pop_front_chunk() {
                Some(chunk) => {
                    assert!(!chunk.is_empty());
                    assert_eq!(chunk, model[..chunk.len()]);
                    model.drain(..chunk.len());
                }
                None => assert!(model.is_empty()),
            },
            13 => {
                let mut slices = vec![IoSlice::new(b"untouched"); usize::from(input.byte() % 8)];
                let filled = buf.fill_io_slices(&mut slices);
                assert_eq!(filled, slices.len().min(buf.chunk_count()));
                assert!(slices[..filled].iter().all(|s| !s.is_empty()));
                assert!(slices[filled..].iter().all(|s| &**s == b"untouched"));
                let joined: Vec<u8> = slices[..filled].iter().flat_map(|s| s.to_vec()).collect();
                assert_eq!(joined, model[..joined.len()]);
            }
            14 => {
                let i = pick(&mut input, len);
                assert_eq!(buf.get(i), model.get(i).copied());
            }
            15 => {
                let start = pick(&mut input, len + 1);
                let a = ALPHABET[usize::from(input.byte()) % ALPHABET.len()];
                let b = ALPHABET[usize::from(input.byte()) % ALPHABET.len()];
                let want = model
                    .get(start..)
                    .and_then(|rest| rest.iter().position(|&x| x == a || x == b))
                    .map(|at| start + at);
                assert_eq!(buf.find_either_from(start, a, b), want);
            }
            16 => {
                let start = pick(&mut input, len + 1);
                let slices: Vec<&[u8]> = buf.chunks_from(start).collect();
                assert!(slices.iter().all(|s| !s.is_empty()));
                assert_eq!(slices.concat(), model.get(start..).unwrap_or_default());
            }
            17 => {
                let n = usize::from(input.byte() % 32);
                let piece = bytes(&mut input, n);
                let mut other = Buffer::from(piece.clone());
                other.push(Bytes::copy_from_slice(&piece));
                buf.append(&mut other);
                assert!(other.is_empty());
                model.extend_from_slice(&piece);
                model.extend_from_slice(&piece);
            }
            18 => {
                if input.bool() {
                    let taken = buf.take_all();
                    assert!(taken == model);
                    buf = taken;
                } else {
                    buf.clear();
                    model.clear();
                }
            }
            19 => {
                // Through `Buf`.
                match input.byte() % 3 {
                    0 if len >= 4 => {
                        let want = u32::from_be_bytes(model[..4].try_into().expect("4"));
                        assert_eq!(buf.get_u32(), want);
                        model.drain(..4);
                    }
                    1 => {
                        let n = pick(&mut input, len);
                        assert_eq!(buf.copy_to_bytes(n), model[..n]);
                        model.drain(..n);
                    }
                    _ => {
                        assert_eq!(buf.remaining(), len);
                        assert_eq!(
                            Buf::chunk(&buf),
                            buf.front_chunk().map_or(&[][..], |c| &c[..])
                        );
                        let n = pick(&mut input, len);
                        Buf::advance(&mut buf, n);
                        model.drain(..n);
                    }
                }
            }
            20 => {
                // Through `io::Read` and `io::Write`.
                if input.bool() {
                    let n = usize::from(input.byte() % 32);
                    let piece = bytes(&mut input, n);
                    buf.write_all(&piece).expect("write");
                    let n = buf
                        .write_vectored(&[IoSlice::new(&piece), IoSlice::new(b"z")])
                        .expect("write_vectored");
                    assert_eq!(n, piece.len() + 1);
                    model.extend_from_slice(&piece);
                    model.extend_from_slice(&piece);
                    model.push(b'z');
                } else {
                    let mut dst = vec![0u8; usize::from(input.byte())];
                    let got = Read::read(&mut buf, &mut dst).expect("read");
                    assert_eq!(dst[..got], model[..got]);
                    model.drain(..got);
                }
            }
            21 => {
                // Clones share chunks and compare by content.
                let copy = buf.clone();
                assert!(copy == buf);
                assert_eq!(copy.to_vec(), model);
                assert_eq!(Bytes::from(copy), model[..]);
                let rechunked = if len > 4096 {
                    buf.clone()
                } else {
                    let mut b = Buffer::new();
                    for byte in &model {
                        b.push(Bytes::copy_from_slice(&[*byte]));
                    }
                    b
                };
                assert!(rechunked == buf);
            }
            22 => {
                // A line read in every style from a copy, against the model.
                for eol in STYLES {
                    let mut copy = buf.clone();
                    match model_find_eol(&model, eol) {
                        Some((line, _)) => {
                            assert_eq!(copy.read_line(eol).expect("line"), model[..line])
                        }
                        None => assert_eq!(copy.read_line(eol), None),
                    }
                }
            }
            _ => {
                let s = format!("{buf:?}");
                assert!(s.contains(&format!("len: {len}")));
            }
        }
        check_invariants(&buf, &model);
    }
}
