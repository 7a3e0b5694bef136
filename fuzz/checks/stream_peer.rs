//! The `StreamPeer` getters and Godot strings over `StreamPeerBuffer`, and
//! the trait's default string readers over a plain queue, against a model
//! of the bytes and the cursor: no panic, the documented result and error
//! for every call, the cursor where the model says. Lengths come from the
//! input unchecked, so a reader that allocated what a length claims shows
//! up under the fuzzer's `-malloc_limit_mb`.

use std::collections::VecDeque;

use evstream::peer::{f16_bits_to_f32, f32_to_f16_bits, ByteOrder, StreamPeer, StreamPeerBuffer};
use evstream::Error;

use super::input::Input;

const DEFAULT_MAX: usize = 16 * 1024 * 1024;

fn order(arg: u32) -> ByteOrder {
    if arg & 1 == 0 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    }
}

fn is_eof(result: &evstream::Result<impl std::fmt::Debug>, needed: usize, received: usize) -> bool {
    matches!(result, Err(Error::UnexpectedEof { needed: n, received: r }) if *n == needed && *r == received)
}

/// Reads `N` bytes at the model cursor, or checks the documented error.
fn typed<const N: usize, T: PartialEq + std::fmt::Debug>(
    peer: &mut StreamPeerBuffer,
    model: &[u8],
    pos: &mut usize,
    result: evstream::Result<T>,
    decode: impl Fn([u8; N]) -> T,
) {
    let available = model.len() - *pos;
    if available < N {
        assert!(is_eof(&result, N, available), "{result:?}");
    } else {
        let bytes: [u8; N] = model[*pos..*pos + N].try_into().expect("N bytes");
        let value = result.expect("enough bytes");
        // Compare bit patterns through Debug (NaN != NaN).
        assert_eq!(format!("{value:?}"), format!("{:?}", decode(bytes)));
        *pos += N;
    }
    assert_eq!(peer.position(), *pos);
}

/// What a Godot string read should give at `pos`: the result and the
/// cursor after it.
fn model_string(
    model: &[u8],
    pos: usize,
    max: usize,
) -> (Result<String, (bool, usize, usize)>, usize) {
    let available = model.len() - pos;
    if available < 4 {
        return (Err((true, 4, available)), pos);
    }
    let len = u32::from_le_bytes(model[pos..pos + 4].try_into().expect("4")) as usize;
    let pos = pos + 4;
    if len > max {
        return (Err((false, 0, 0)), pos);
    }
    model_raw(model, pos, len)
}

/// `Err((true, needed, received))` for the end, `Err((false, ..))` for
/// invalid data.
fn model_raw(
    model: &[u8],
    pos: usize,
    len: usize,
) -> (Result<String, (bool, usize, usize)>, usize) {
    let available = model.len() - pos;
    if available < len {
        return (Err((true, len, available)), pos);
    }
    match String::from_utf8(model[pos..pos + len].to_vec()) {
        Ok(s) => (Ok(s), pos + len),
        Err(_) => (Err((false, 0, 0)), pos + len),
    }
}

fn same(got: evstream::Result<String>, want: Result<String, (bool, usize, usize)>) {
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(Error::UnexpectedEof { needed, received }), Err((true, n, r))) => {
            assert_eq!((needed, received), (n, r))
        }
        (Err(Error::InvalidData(_)), Err((false, _, _))) => {}
        _ => panic!("got {got:?}, model says {want:?}"),
    }
}

/// A peer that only has the required methods, so the trait's default
/// string readers run; its end is final.
struct Queue(VecDeque<u8>);

impl StreamPeer for Queue {
    fn put_data(&mut self, data: &[u8]) -> evstream::Result<()> {
        self.0.extend(data);
        Ok(())
    }

    fn put_partial_data(&mut self, data: &[u8]) -> evstream::Result<usize> {
        self.0.extend(data);
        Ok(data.len())
    }

    fn get_data(&mut self, dst: &mut [u8]) -> evstream::Result<()> {
        if self.0.len() < dst.len() {
            return Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: self.0.len(),
            });
        }
        let n = dst.len();
        for (d, s) in dst.iter_mut().zip(self.0.drain(..n)) {
            *d = s;
        }
        Ok(())
    }

    fn get_partial_data(&mut self, dst: &mut [u8]) -> evstream::Result<usize> {
        let n = dst.len().min(self.0.len());
        self.get_data(&mut dst[..n]).map(|()| n)
    }

    fn available_bytes(&self) -> usize {
        self.0.len()
    }
}

/// The default readers: the same results as the model, except that the
/// pieces of a string cut short by the end are consumed.
fn defaults(ops: &[(u8, u32)], bytes: &[u8]) {
    let mut queue = Queue(bytes.iter().copied().collect());
    let mut model: VecDeque<u8> = bytes.iter().copied().collect();
    for &(op, arg) in ops {
        let flat: Vec<u8> = model.iter().copied().collect();
        let (result, want, used) = match op % 3 {
            0 => {
                let (want, end) = model_string(&flat, 0, DEFAULT_MAX);
                (queue.get_utf8_string(), want, end)
            }
            1 => {
                let max = (arg % 64) as usize;
                let (want, end) = model_string(&flat, 0, max);
                (queue.get_utf8_string_max(max), want, end)
            }
            _ => {
                let (want, end) = model_raw(&flat, 0, arg as usize);
                (queue.get_string_raw(arg as usize), want, end)
            }
        };
        let eof = matches!(want, Err((true, _, _)));
        same(result, want);
        if eof {
            // The prefix (if it arrived) and any pieces are gone; whatever
            // is left is the end of the input.
            assert!(queue.0.len() <= flat.len() - used);
            model = queue.0.clone();
        } else {
            model.drain(..used);
            assert_eq!(queue.0, model);
        }
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let count = usize::from(input.byte() % 32);
    let ops: Vec<(u8, u32)> = (0..count).map(|_| (input.byte(), input.u32())).collect();
    let bytes = input.rest();

    let mut peer = StreamPeerBuffer::from_vec(bytes.to_vec());
    let mut model = bytes.to_vec();
    let mut pos = 0usize;
    for &(op, arg) in &ops {
        let o = order(arg);
        match op % 24 {
            0 => {
                let r = peer.get_u8_with(o);
                typed(&mut peer, &model, &mut pos, r, |b: [u8; 1]| b[0])
            }
            1 => {
                let r = peer.get_i8_with(o);
                typed(&mut peer, &model, &mut pos, r, i8::from_le_bytes)
            }
            2 => {
                let r = peer.get_u16_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u16::from_le_bytes(b),
                    ByteOrder::Big => u16::from_be_bytes(b),
                })
            }
            3 => {
                let r = peer.get_i16_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => i16::from_le_bytes(b),
                    ByteOrder::Big => i16::from_be_bytes(b),
                })
            }
            4 => {
                let r = peer.get_u32_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u32::from_le_bytes(b),
                    ByteOrder::Big => u32::from_be_bytes(b),
                })
            }
            5 => {
                let r = peer.get_i32_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => i32::from_le_bytes(b),
                    ByteOrder::Big => i32::from_be_bytes(b),
                })
            }
            6 => {
                let r = peer.get_u64_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u64::from_le_bytes(b),
                    ByteOrder::Big => u64::from_be_bytes(b),
                })
            }
            7 => {
                let r = peer.get_i64_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => i64::from_le_bytes(b),
                    ByteOrder::Big => i64::from_be_bytes(b),
                })
            }
            8 => {
                let r = peer.get_f32_with(o).map(f32::to_bits);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u32::from_le_bytes(b),
                    ByteOrder::Big => u32::from_be_bytes(b),
                })
            }
            9 => {
                let r = peer.get_f64_with(o).map(f64::to_bits);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u64::from_le_bytes(b),
                    ByteOrder::Big => u64::from_be_bytes(b),
                })
            }
            10 => {
                let r = peer.get_f16_bits_with(o);
                typed(&mut peer, &model, &mut pos, r, |b| match o {
                    ByteOrder::Little => u16::from_le_bytes(b),
                    ByteOrder::Big => u16::from_be_bytes(b),
                })
            }
            11 | 12 => {
                let (want, end) = model_string(&model, pos, DEFAULT_MAX);
                let got = if op % 24 == 11 {
                    peer.get_utf8_string()
                } else {
                    peer.get_string()
                };
                same(got, want);
                pos = end;
            }
            13 => {
                let max = (arg % 64) as usize;
                let (want, end) = model_string(&model, pos, max);
                same(peer.get_utf8_string_max(max), want);
                pos = end;
            }
            14 => {
                // A length straight from the input, up to 4 GiB.
                let (want, end) = model_raw(&model, pos, arg as usize);
                same(peer.get_string_raw(arg as usize), want);
                pos = end;
            }
            15 => {
                let mut dst = vec![0u8; (arg % 256) as usize];
                let available = model.len() - pos;
                let result = peer.get_data(&mut dst);
                if available < dst.len() {
                    assert!(is_eof(&result, dst.len(), available), "{result:?}");
                } else {
                    result.expect("enough bytes");
                    assert_eq!(dst, model[pos..pos + dst.len()]);
                    pos += dst.len();
                }
            }
            16 => {
                let mut dst = vec![0u8; (arg % 256) as usize];
                let available = model.len() - pos;
                let result = peer.get_partial_data(&mut dst);
                if available == 0 && !dst.is_empty() {
                    assert!(is_eof(&result, dst.len(), 0), "{result:?}");
                } else {
                    let n = result.expect("partial");
                    assert_eq!(n, dst.len().min(available));
                    assert_eq!(dst[..n], model[pos..pos + n]);
                    pos += n;
                }
            }
            17 => {
                let to = (arg as usize) % (model.len() + 2);
                peer.seek(to);
                pos = to.min(model.len());
            }
            18 => {
                let text: String = (0..arg % 8).map(|i| char::from(b'a' + i as u8)).collect();
                peer.put_utf8_string(&text).expect("put");
                let mut wire = (text.len() as u32).to_le_bytes().to_vec();
                wire.extend_from_slice(text.as_bytes());
                put_model(&mut model, &mut pos, &wire);
            }
            19 => {
                peer.put_u32_with(arg, o).expect("put");
                let wire = match o {
                    ByteOrder::Little => arg.to_le_bytes(),
                    ByteOrder::Big => arg.to_be_bytes(),
                };
                put_model(&mut model, &mut pos, &wire);
            }
            20 => {
                let n = (arg % 16) as usize;
                let partial = peer.put_partial_data(&vec![0xa5; n]).expect("put");
                assert_eq!(partial, n);
                put_model(&mut model, &mut pos, &vec![0xa5; n]);
            }
            21 => {
                let len = (arg % 512) as usize;
                peer.resize(len);
                model.resize(len, 0);
                pos = pos.min(len);
            }
            22 => {
                // Half floats: f16 -> f32 -> f16 is exact except for NaN
                // payloads.
                let bits = arg as u16;
                let value = f16_bits_to_f32(bits);
                if value.is_nan() {
                    assert!(f16_bits_to_f32(f32_to_f16_bits(value)).is_nan());
                } else {
                    assert_eq!(f32_to_f16_bits(value), bits, "{bits:#06x} -> {value}");
                }
                let _ = f32_to_f16_bits(f32::from_bits(arg));
            }
            _ => assert_eq!(peer.available_bytes(), model.len() - pos),
        }
        assert_eq!(peer.position(), pos, "cursor after op {}", op % 24);
        assert_eq!(peer.data(), &model[..]);
        assert_eq!(peer.len(), model.len());
    }

    defaults(&ops, bytes);
}

fn put_model(model: &mut Vec<u8>, pos: &mut usize, data: &[u8]) {
    let end = *pos + data.len();
    if end > model.len() {
        model.resize(end, 0);
    }
    model[*pos..end].copy_from_slice(data);
    *pos = end;
}
