use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::*;
use crate::buffer::Buffer;
use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Limit};

fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscMessage::new(addr, args).into()
}

fn bundle(timetag: OscTime, content: Vec<OscPacket>) -> OscPacket {
    OscBundle::new(timetag, content).into()
}

/// Encodes, checks the exact bytes, decodes with both decoders and checks
/// the packet comes back.
fn check_wire(packet: &OscPacket, wire: &[u8]) {
    let encoded = encode(packet).unwrap();
    assert_eq!(&encoded[..], wire, "encoding of {packet:?}");
    assert_eq!(&decode(wire).unwrap(), packet);
    assert_eq!(
        &decode_bytes(&Bytes::copy_from_slice(wire)).unwrap(),
        packet
    );
}

/// The reason of an `InvalidData` error, failing on anything else.
fn invalid_data(bytes: &[u8]) -> String {
    match decode(bytes) {
        Err(Error::InvalidData(reason)) => reason,
        other => panic!("expected InvalidData for {bytes:?}, got {other:?}"),
    }
}

fn invalid_input(packet: &OscPacket) -> String {
    match encode(packet) {
        Err(Error::InvalidInput(reason)) => reason,
        other => panic!("expected InvalidInput for {packet:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The OSC 1.0 specification's examples

#[test]
fn spec_example_oscillator_frequency() {
    let wire = [
        0x2f, 0x6f, 0x73, 0x63, 0x69, 0x6c, 0x6c, 0x61, 0x74, 0x6f, 0x72, 0x2f, 0x34, 0x2f, 0x66,
        0x72, 0x65, 0x71, 0x75, 0x65, 0x6e, 0x63, 0x79, 0x00, 0x2c, 0x66, 0x00, 0x00, 0x43, 0xdc,
        0x00, 0x00,
    ];
    check_wire(
        &msg("/oscillator/4/frequency", vec![OscType::Float(440.0)]),
        &wire,
    );
}

#[test]
fn spec_example_foo_iisff() {
    let wire = [
        0x2f, 0x66, 0x6f, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x69, 0x69, 0x73, 0x66, 0x66, 0x00,
        0x00, 0x00, 0x00, 0x03, 0xe8, 0xff, 0xff, 0xff, 0xff, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        0x00, 0x00, 0x3f, 0x9d, 0xf3, 0xb6, 0x40, 0xb5, 0xb2, 0x2d,
    ];
    check_wire(
        &msg(
            "/foo",
            vec![
                OscType::Int(1000),
                OscType::Int(-1),
                OscType::String("hello".into()),
                OscType::Float(1.234),
                OscType::Float(5.678),
            ],
        ),
        &wire,
    );
}

#[test]
fn spec_string_padding_examples() {
    // "OSC" takes 4 bytes with its NUL; "data" needs 4 more NULs.
    check_wire(
        &msg("/a", vec![OscType::String("OSC".into())]),
        b"/a\0\0,s\0\0OSC\0",
    );
    check_wire(
        &msg("/a", vec![OscType::String("data".into())]),
        b"/a\0\0,s\0\0data\0\0\0\0",
    );
    check_wire(
        &msg("/a", vec![OscType::String(String::new())]),
        b"/a\0\0,s\0\0\0\0\0\0",
    );
}

// ---------------------------------------------------------------------------
// Every type tag

#[test]
fn every_type_tag_has_its_exact_encoding() {
    let cases: Vec<(OscType, &[u8], &[u8])> = vec![
        (OscType::Int(-2), b"i", b"\xff\xff\xff\xfe"),
        (OscType::Float(-0.5), b"f", b"\xbf\x00\x00\x00"),
        (OscType::String("hi".into()), b"s", b"hi\0\0"),
        (
            OscType::Blob(Bytes::from_static(b"\x01\x02\x03\x04\x05")),
            b"b",
            b"\0\0\0\x05\x01\x02\x03\x04\x05\0\0\0",
        ),
        (OscType::Blob(Bytes::new()), b"b", b"\0\0\0\0"),
        (
            OscType::Long(-0x0102_0304_0506_0708),
            b"h",
            b"\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf8",
        ),
        (
            OscType::Time(OscTime {
                seconds: 0x0102_0304,
                fraction: 0x0506_0708,
            }),
            b"t",
            b"\x01\x02\x03\x04\x05\x06\x07\x08",
        ),
        (OscType::Double(1.5), b"d", b"\x3f\xf8\0\0\0\0\0\0"),
        (OscType::Symbol("sym".into()), b"S", b"sym\0"),
        (OscType::Char('A'), b"c", b"\0\0\0\x41"),
        (OscType::Char('€'), b"c", b"\0\0\x20\xac"),
        (
            OscType::Color(OscColor {
                r: 1,
                g: 2,
                b: 3,
                a: 4,
            }),
            b"r",
            b"\x01\x02\x03\x04",
        ),
        (
            OscType::Midi(OscMidi {
                port: 9,
                status: 0x90,
                data1: 60,
                data2: 100,
            }),
            b"m",
            b"\x09\x90\x3c\x64",
        ),
        (OscType::Bool(true), b"T", b""),
        (OscType::Bool(false), b"F", b""),
        (OscType::Nil, b"N", b""),
        (OscType::Inf, b"I", b""),
        (OscType::Array(vec![]), b"[]", b""),
        (
            OscType::Array(vec![OscType::Int(7), OscType::Nil]),
            b"[iN]",
            b"\0\0\0\x07",
        ),
    ];
    for (arg, tags, data) in cases {
        let mut wire = b"/t\0\0,".to_vec();
        wire.extend_from_slice(tags);
        wire.push(0);
        wire.resize(wire.len().next_multiple_of(4), 0);
        wire.extend_from_slice(data);
        check_wire(&msg("/t", vec![arg.clone()]), &wire);
        let first_tag = char::from(tags[0]);
        assert_eq!(arg.type_tag(), first_tag);
    }
}

#[test]
fn a_message_without_arguments_has_an_empty_tag_string() {
    check_wire(&msg("/", vec![]), b"/\0\0\0,\0\0\0");
    check_wire(&msg("/abc", vec![]), b"/abc\0\0\0\0,\0\0\0");
}

#[test]
fn nested_arrays_round_trip() {
    let packet = msg(
        "/arr",
        vec![
            OscType::Int(1),
            OscType::Array(vec![
                OscType::String("a".into()),
                OscType::Array(vec![OscType::Float(2.0), OscType::Array(vec![])]),
                OscType::Bool(true),
            ]),
            OscType::Int(3),
        ],
    );
    check_wire(
        &packet,
        b"/arr\0\0\0\0,i[s[f[]]T]i\0\0\0\0\0\0\0\x01a\0\0\0\x40\0\0\0\0\0\0\x03",
    );
}

#[test]
fn nested_bundles_round_trip() {
    let inner = bundle(
        OscTime {
            seconds: 5,
            fraction: 6,
        },
        vec![msg("/b", vec![OscType::Int(2)])],
    );
    let outer = bundle(
        OscTime::IMMEDIATELY,
        vec![
            msg("/a", vec![]),
            inner,
            bundle(OscTime::IMMEDIATELY, vec![]),
        ],
    );
    let mut wire = Vec::new();
    wire.extend_from_slice(b"#bundle\0\0\0\0\0\0\0\0\x01");
    wire.extend_from_slice(b"\0\0\0\x08/a\0\0,\0\0\0");
    wire.extend_from_slice(b"\0\0\0\x20#bundle\0\0\0\0\x05\0\0\0\x06");
    wire.extend_from_slice(b"\0\0\0\x0c/b\0\0,i\0\0\0\0\0\x02");
    wire.extend_from_slice(b"\0\0\0\x10#bundle\0\0\0\0\0\0\0\0\x01");
    check_wire(&outer, &wire);
}

#[test]
fn bundles_and_arrays_nest_up_to_max_depth() {
    let mut packet = bundle(OscTime::IMMEDIATELY, vec![msg("/x", vec![])]);
    for _ in 1..MAX_DEPTH {
        packet = bundle(OscTime::IMMEDIATELY, vec![packet]);
    }
    let wire = encode(&packet).unwrap();
    assert_eq!(decode(&wire).unwrap(), packet);
    let deeper = bundle(OscTime::IMMEDIATELY, vec![packet]);
    assert!(invalid_input(&deeper).contains("nested more than 32"));

    let mut array = OscType::Array(vec![OscType::Int(1)]);
    for _ in 1..MAX_DEPTH {
        array = OscType::Array(vec![array]);
    }
    let packet = msg("/x", vec![array.clone()]);
    let wire = encode(&packet).unwrap();
    assert_eq!(decode(&wire).unwrap(), packet);
    let deeper = msg("/x", vec![OscType::Array(vec![array])]);
    assert!(invalid_input(&deeper).contains("nested more than 32"));
}

#[test]
fn decode_bytes_slices_blobs_and_decode_copies() {
    let wire = encode(&msg(
        "/b",
        vec![OscType::Blob(Bytes::from_static(b"payload"))],
    ))
    .unwrap();
    let OscPacket::Message(m) = decode_bytes(&wire).unwrap() else {
        panic!()
    };
    let OscType::Blob(blob) = &m.args[0] else {
        panic!()
    };
    assert_eq!(&blob[..], b"payload");
    assert_eq!(blob.as_ptr(), wire[12..].as_ptr());
    let OscPacket::Message(m) = decode(&wire).unwrap() else {
        panic!()
    };
    assert_eq!(m.args[0], OscType::Blob(Bytes::from_static(b"payload")));
}

#[test]
fn encode_into_appends_with_padding_relative_to_the_packet() {
    let packet = msg("/ab", vec![OscType::String("x".into())]);
    let mut out = b"12345".to_vec();
    encode_into(&packet, &mut out).unwrap();
    assert_eq!(&out[..5], b"12345");
    assert_eq!(&out[5..], &encode(&packet).unwrap()[..]);
}

// ---------------------------------------------------------------------------
// Lenient where the spec allows, strict elsewhere

#[test]
fn non_zero_padding_bytes_are_accepted() {
    let packet = decode(b"/a\0x,s\0yhi\0z").unwrap();
    assert_eq!(packet, msg("/a", vec![OscType::String("hi".into())]));
    let packet = decode(b"/a\0\0,b\0\0\0\0\0\x01\x07\xff\xff\xff").unwrap();
    assert_eq!(
        packet,
        msg("/a", vec![OscType::Blob(Bytes::from_static(b"\x07"))])
    );
}

#[test]
fn a_message_without_type_tags_has_no_arguments() {
    assert_eq!(decode(b"/old\0\0\0\0").unwrap(), msg("/old", vec![]));
}

#[test]
fn encoding_refuses_what_cannot_be_sent() {
    assert!(invalid_input(&msg("abc", vec![])).contains("does not start with '/'"));
    assert!(invalid_input(&msg("", vec![])).contains("does not start with '/'"));
    assert!(invalid_input(&msg("/a\0b", vec![])).contains("NUL"));
    assert!(invalid_input(&msg("/a", vec![OscType::String("x\0".into())])).contains("NUL"));
    assert!(invalid_input(&msg("/a", vec![OscType::Symbol("\0".into())])).contains("NUL"));
    // Inside a bundle, and nothing is left appended.
    let nested = bundle(
        OscTime::IMMEDIATELY,
        vec![msg("/ok", vec![]), msg("bad", vec![])],
    );
    let mut out = b"keep".to_vec();
    assert!(matches!(
        encode_into(&nested, &mut out),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(out, b"keep");
}

#[test]
fn malformed_packets_are_invalid_data_with_a_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (b"/abc", "string without NUL"),
        (b"/ab\0,i\0\0\0\0\0", "not a multiple of 4"),
        (b"/abcdefg", "string without NUL"),
        (b"/a\0\0,iii\0\0\0\0\0\0\0\x01", "argument 'i' at offset 16"),
        (b"/a\0\0,i\0\0", "argument 'i' at offset 8 needs 4 bytes"),
        (b"/a\0\0,h\0\0\0\0\0\0", "argument 'h'"),
        (b"/a\0\0,d\0\0\0\0\0\0", "argument 'd'"),
        (b"/a\0\0,t\0\0\0\0\0\0", "time tag"),
        (b"/a\0\0,s\0\0", "string without NUL"),
        (b"/a\0\0,s\0\0abcd", "string without NUL"),
        (b"/a\0\0,b\0\0", "argument 'b'"),
        (b"/a\0\0,b\0\0\0\0\0\x05abcd", "runs past the end"),
        (b"/a\0\0,b\0\0\x7f\xff\xff\xff", "runs past the end"),
        (b"/a\0\0,b\0\0\xff\xff\xff\xff", "negative size"),
        (
            b"/a\0\0,b\0\0\0\0\0\x03abc\0\0\0\0\0",
            "after its last argument",
        ),
        (b"/a\0\0,x\0\0", "unknown OSC type tag 'x'"),
        (b"/a\0\0,[\0\0", "'[' without ']'"),
        (b"/a\0\0,[[]\0\0\0\0", "'[' without ']'"),
        (b"/a\0\0,]\0\0", "']' without '['"),
        (b"/a\0\0,i][\0\0\0\0\0\0\0\x01", "']' without '['"),
        (b"/a\0\0,c\0\0\0\0\xd8\0", "not a Unicode scalar value"),
        (b"/a\0\0,c\0\0\x00\x11\0\0", "not a Unicode scalar value"),
        (b"/a\0\0,\0\0\0\0\0\0\0", "after its last argument"),
        (b"/a\0\0i\0\0\0", "does not start with ','"),
        (b"/\xff\0\0", "not valid UTF-8"),
        (b"/a\0\0,s\0\0\xc3\x28\0\0", "not valid UTF-8"),
        (b"abcd", "neither '/' nor '#bundle'"),
        (b"\0\0\0\0", "neither '/' nor '#bundle'"),
        (b"#bun", "not with \"#bundle\\0\""),
        (b"#bundlX\0\0\0\0\0\0\0\0\x01", "not with \"#bundle\\0\""),
        (b"#bundle\0\0\0\0\0", "time tag"),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\0\0\0\x08/a\0\0",
            "runs past the end",
        ),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\x7f\xff\xff\xff",
            "runs past the end",
        ),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\xff\xff\xff\xfc",
            "negative size",
        ),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\0\0\0\x03/a\0\0",
            "not a multiple of 4",
        ),
        (b"#bundle\0\0\0\0\0\0\0\0\x01\0\0\0\0", "is empty"),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\0\0\0\x04abcd",
            "neither '/' nor '#bundle'",
        ),
        (
            b"#bundle\0\0\0\0\0\0\0\0\x01\0\0\0\x08/a\0\0,x\0\0",
            "unknown OSC type tag",
        ),
    ];
    for (bytes, reason) in cases {
        let got = invalid_data(bytes);
        assert!(
            got.contains(reason),
            "{bytes:?}: expected a reason containing {reason:?}, got {got:?}"
        );
        assert!(got.starts_with("OSC ") || got.starts_with("unknown OSC"));
    }
}

#[test]
fn nesting_past_max_depth_is_invalid_data() {
    // 33 nested bundles, built by hand (encode would refuse them).
    let mut wire = b"/x\0\0,\0\0\0".to_vec();
    for _ in 0..=MAX_DEPTH {
        let mut outer = b"#bundle\0\0\0\0\0\0\0\0\x01".to_vec();
        outer.extend_from_slice(&(wire.len() as i32).to_be_bytes());
        outer.extend_from_slice(&wire);
        wire = outer;
    }
    assert!(invalid_data(&wire).contains("nested more than 32 deep"));

    let mut tags = b",".to_vec();
    tags.extend(std::iter::repeat_n(b'[', MAX_DEPTH + 1));
    tags.extend(std::iter::repeat_n(b']', MAX_DEPTH + 1));
    let mut wire = b"/x\0\0".to_vec();
    wire.extend_from_slice(&tags);
    wire.push(0);
    wire.resize(wire.len().next_multiple_of(4), 0);
    assert!(invalid_data(&wire).contains("arrays nested more than 32 deep"));
}

#[test]
fn a_huge_blob_size_is_refused_before_allocating() {
    // Announces 2 GiB in a 12-byte packet: rejected from the size alone.
    let reason = invalid_data(b"/a\0\0,b\0\0\x7f\xff\xff\xfc");
    assert!(reason.contains("2147483644 bytes runs past the end of the packet (0 bytes left)"));
    let reason = invalid_data(b"#bundle\0\0\0\0\0\0\0\0\x01\x7f\xff\xff\xfc");
    assert!(reason.contains("runs past the end"));
}

// ---------------------------------------------------------------------------
// Time tags

#[test]
fn time_tags_convert_with_system_time() {
    assert_eq!(
        OscTime::from(UNIX_EPOCH),
        OscTime {
            seconds: 2_208_988_800,
            fraction: 0
        }
    );
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
    let tag = OscTime::from(t);
    assert_eq!(tag.seconds, 3_908_988_800);
    assert_eq!(tag.fraction, 1 << 30);
    assert_eq!(SystemTime::try_from(tag).unwrap(), t);
    // Every nanosecond survives, at the ends of the range too.
    for t in [
        UNIX_EPOCH + Duration::new(1, 999_999_999),
        UNIX_EPOCH + Duration::new(4_000_000_000, 1),
        UNIX_EPOCH - Duration::new(1, 1),
        UNIX_EPOCH - Duration::new(60 * 60 * 24 * 365, 7),
    ] {
        assert_eq!(SystemTime::try_from(OscTime::from(t)).unwrap(), t, "{t:?}");
    }
    // Past 2036 the seconds wrap and come back in era 1.
    let later = UNIX_EPOCH + Duration::from_secs((1 << 32) - 2_208_988_800 + 10);
    assert_eq!(OscTime::from(later).seconds, 10);
    assert_eq!(SystemTime::try_from(OscTime::from(later)).unwrap(), later);
    // The largest fraction rounds up into the next second.
    let top = OscTime {
        seconds: 2_208_988_800,
        fraction: u32::MAX,
    };
    assert_eq!(
        SystemTime::try_from(top).unwrap(),
        UNIX_EPOCH + Duration::from_secs(1)
    );
    assert!(matches!(
        SystemTime::try_from(OscTime::IMMEDIATELY),
        Err(Error::InvalidInput(_))
    ));
    assert!(OscTime::IMMEDIATELY.is_immediately());
}

// ---------------------------------------------------------------------------
// TouchDesigner's sendOSC inference

const NON_STANDARD: SendOscOptions = SendOscOptions {
    as_bundle: false,
    use_non_standard_types: true,
    use_64bit_precision: false,
};
const WIDE: SendOscOptions = SendOscOptions {
    as_bundle: false,
    use_non_standard_types: true,
    use_64bit_precision: true,
};
const STANDARD: SendOscOptions = SendOscOptions {
    as_bundle: false,
    use_non_standard_types: false,
    use_64bit_precision: false,
};

/// Expected arguments, or `None` for an `InvalidInput` error.
type Expect = Option<Vec<OscType>>;

fn one(arg: OscType) -> Expect {
    Some(vec![arg])
}

#[test]
fn inference_follows_touchdesigner_for_every_option() {
    use OscType::*;
    let big = i64::from(i32::MAX) + 1;
    let list = OscValue::List(vec![
        1.into(),
        OscValue::List(vec![2.5.into(), true.into()]),
        OscValue::None,
    ]);
    // (value, non-standard, non-standard + 64-bit, standard)
    let rows: Vec<(OscValue, Expect, Expect, Expect)> = vec![
        (1.into(), one(Int(1)), one(Long(1)), one(Int(1))),
        ((-7).into(), one(Int(-7)), one(Long(-7)), one(Int(-7))),
        (
            i32::MAX.into(),
            one(Int(i32::MAX)),
            one(Long(i32::MAX.into())),
            one(Int(i32::MAX)),
        ),
        (
            i32::MIN.into(),
            one(Int(i32::MIN)),
            one(Long(i32::MIN.into())),
            one(Int(i32::MIN)),
        ),
        (big.into(), one(Long(big)), one(Long(big)), None),
        (
            (i64::from(i32::MIN) - 1).into(),
            one(Long(i64::from(i32::MIN) - 1)),
            one(Long(i64::from(i32::MIN) - 1)),
            None,
        ),
        (
            i64::MIN.into(),
            one(Long(i64::MIN)),
            one(Long(i64::MIN)),
            None,
        ),
        (
            1.5.into(),
            one(Float(1.5)),
            one(Double(1.5)),
            one(Float(1.5)),
        ),
        (
            0.1f64.into(),
            one(Float(0.1)),
            one(Double(0.1)),
            one(Float(0.1)),
        ),
        (
            f64::INFINITY.into(),
            one(Inf),
            one(Inf),
            one(Float(f32::INFINITY)),
        ),
        (
            f64::NEG_INFINITY.into(),
            one(Float(f32::NEG_INFINITY)),
            one(Double(f64::NEG_INFINITY)),
            one(Float(f32::NEG_INFINITY)),
        ),
        (true.into(), one(Bool(true)), one(Bool(true)), one(Int(1))),
        (
            false.into(),
            one(Bool(false)),
            one(Bool(false)),
            one(Int(0)),
        ),
        (OscValue::None, one(Nil), one(Nil), one(Int(0))),
        (
            "apple".into(),
            one(String("apple".into())),
            one(String("apple".into())),
            one(String("apple".into())),
        ),
        (
            b"abc".to_vec().into(),
            one(Blob(Bytes::from_static(b"abc"))),
            one(Blob(Bytes::from_static(b"abc"))),
            one(Blob(Bytes::from_static(b"abc"))),
        ),
        (
            list,
            one(Array(vec![
                Int(1),
                Array(vec![Float(2.5), Bool(true)]),
                Nil,
            ])),
            one(Array(vec![
                Long(1),
                Array(vec![Double(2.5), Bool(true)]),
                Nil,
            ])),
            Some(vec![Int(1), Float(2.5), Int(1), Int(0)]),
        ),
        (
            OscValue::List(vec![]),
            one(Array(vec![])),
            one(Array(vec![])),
            Some(vec![]),
        ),
        ("a\0b".into(), None, None, None),
    ];
    for (value, non_standard, wide, standard) in rows {
        for (options, expect) in [
            (NON_STANDARD, non_standard),
            (WIDE, wide),
            (STANDARD, standard),
        ] {
            // as_bundle does not change the typing.
            for as_bundle in [false, true] {
                let options = options.as_bundle(as_bundle);
                let got = infer_args(std::slice::from_ref(&value), &options);
                match (&expect, got) {
                    (Some(want), Ok(got)) => {
                        assert_eq!(&got, want, "{value:?} with {options:?}");
                        // NaN-free here, so equality is exact; also encodable.
                        encode(&msg("/v", got)).unwrap();
                    }
                    (None, Err(Error::InvalidInput(_))) => {}
                    (want, got) => panic!("{value:?} with {options:?}: want {want:?}, got {got:?}"),
                }
            }
        }
        // 64-bit precision needs non-standard types, whatever the values.
        let invalid = SendOscOptions {
            as_bundle: false,
            use_non_standard_types: false,
            use_64bit_precision: true,
        };
        assert!(matches!(
            infer_args(std::slice::from_ref(&value), &invalid),
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(matches!(
        infer_args(&[], &STANDARD.use_64bit_precision(true)),
        Err(Error::InvalidInput(reason)) if reason.contains("requires use_non_standard_types")
    ));
}

#[test]
fn nan_is_a_float() {
    for (options, tag) in [(NON_STANDARD, 'f'), (WIDE, 'd'), (STANDARD, 'f')] {
        let args = infer_args(&[f64::NAN.into()], &options).unwrap();
        assert_eq!(args[0].type_tag(), tag);
        match &args[0] {
            OscType::Float(v) => assert!(v.is_nan()),
            OscType::Double(v) => assert!(v.is_nan()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn touchdesigner_example_encodes_for_each_option_set() {
    let values: Vec<OscValue> = vec![
        1.into(),
        Bytes::from_static(b"abc").into(),
        "apple".into(),
        vec![OscValue::from(6), 7.into(), 8.into()].into(),
        true.into(),
        Option::<f64>::None.into(),
        f64::INFINITY.into(),
    ];
    let tags = |options: SendOscOptions| -> std::string::String {
        let OscPacket::Message(m) = &osc_packets(&[("/abc", &values[..])], &options).unwrap()[0]
        else {
            panic!()
        };
        let wire = encode(&OscPacket::Message(m.clone())).unwrap();
        // The tag string follows "/abc\0\0\0\0".
        let end = wire[8..].iter().position(|&b| b == 0).unwrap();
        std::string::String::from_utf8(wire[8..8 + end].to_vec()).unwrap()
    };
    assert_eq!(tags(NON_STANDARD), ",ibs[iii]TNI");
    assert_eq!(tags(WIDE), ",hbs[hhh]TNI");
    assert_eq!(tags(STANDARD), ",ibsiiiiif");
}

#[test]
fn osc_packets_makes_messages_or_one_bundle() {
    let pairs = [
        ("/a", vec![OscValue::from(1)]),
        ("/b", vec![OscValue::from("x")]),
    ];
    let separate = osc_packets(&pairs, &NON_STANDARD).unwrap();
    assert_eq!(
        separate,
        [
            msg("/a", vec![OscType::Int(1)]),
            msg("/b", vec![OscType::String("x".into())]),
        ]
    );
    for options in [NON_STANDARD, WIDE, STANDARD] {
        let bundled = osc_packets(&pairs, &options.as_bundle(true)).unwrap();
        let [OscPacket::Bundle(b)] = &bundled[..] else {
            panic!("{bundled:?}")
        };
        assert_eq!(b.timetag, OscTime::IMMEDIATELY);
        assert_eq!(b.content.len(), 2);
        let round = decode(&encode(&bundled[0]).unwrap()).unwrap();
        assert_eq!(round, bundled[0]);
    }
    let none: [(&str, Vec<OscValue>); 0] = [];
    assert!(osc_packets(&none, &NON_STANDARD).unwrap().is_empty());
    assert_eq!(
        osc_packets(&none, &NON_STANDARD.as_bundle(true)).unwrap(),
        [bundle(OscTime::IMMEDIATELY, vec![])]
    );
    // Bad addresses and options are refused.
    assert!(matches!(
        osc_packets(&[("nope", vec![])], &NON_STANDARD),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        osc_packets(&[("/a\0", vec![])], &NON_STANDARD),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        osc_packets(&pairs, &STANDARD.use_64bit_precision(true)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        osc_packets(
            &[("/a", vec![OscValue::Int(1 << 40)])],
            &STANDARD.as_bundle(true)
        ),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn value_conversions() {
    assert_eq!(OscValue::from(7u8), OscValue::Int(7));
    assert_eq!(OscValue::from(u32::MAX), OscValue::Int(u32::MAX.into()));
    assert_eq!(OscValue::from(-3i16), OscValue::Int(-3));
    assert_eq!(OscValue::from(2.5f32), OscValue::Float(2.5));
    assert_eq!(OscValue::from(Some("s")), OscValue::Str("s".into()));
    assert_eq!(OscValue::from(Option::<bool>::None), OscValue::None);
    assert_eq!(
        OscValue::from(&b"ab"[..]),
        OscValue::Bytes(Bytes::from_static(b"ab"))
    );
    assert_eq!(OscValue::try_from(5u64).unwrap(), OscValue::Int(5));
    assert!(OscValue::try_from(u64::MAX).is_err());
    assert_eq!(OscValue::try_from(9usize).unwrap(), OscValue::Int(9));
    assert_eq!(OscValue::try_from(-9isize).unwrap(), OscValue::Int(-9));
    let mut deep = OscValue::List(vec![]);
    for _ in 0..MAX_DEPTH {
        deep = OscValue::List(vec![deep]);
    }
    assert!(matches!(
        infer_args(&[deep.clone()], &NON_STANDARD),
        Err(Error::InvalidInput(_))
    ));
    // Flattened, depth does not matter.
    assert_eq!(infer_args(&[deep], &STANDARD).unwrap(), []);
}

// ---------------------------------------------------------------------------
// The TCP codec

fn sample_packets() -> Vec<OscPacket> {
    vec![
        msg("/a", vec![OscType::Int(1)]),
        // Contains SLIP END and ESC bytes.
        msg(
            "/b",
            vec![OscType::Blob(Bytes::from_static(&[0xC0, 0xDB, 0xC0, 0xDC]))],
        ),
        bundle(
            OscTime::IMMEDIATELY,
            vec![msg("/c", vec![OscType::Float(-1.0)])],
        ),
    ]
}

#[test]
fn codec_frames_both_ways() {
    let packets = sample_packets();
    for framing in [OscFraming::Osc10, OscFraming::Osc11] {
        let mut codec = OscCodec::new(framing, 1024);
        let mut wire = Buffer::new();
        for packet in &packets {
            codec.encode(packet, &mut wire).unwrap();
        }
        codec.encode(packets[0].clone(), &mut wire).unwrap();
        if framing == OscFraming::Osc10 {
            assert_eq!(&wire.to_vec()[..16], b"\0\0\0\x0c/a\0\0,i\0\0\0\0\0\x01");
        } else {
            assert_eq!(wire.to_vec()[0], 0xC0);
        }
        let mut got = Vec::new();
        while let Some(packet) = codec.decode(&mut wire).unwrap() {
            got.push(packet);
        }
        assert!(wire.is_empty());
        assert_eq!(got[..3], packets[..]);
        assert_eq!(got[3], packets[0]);
        assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
    }
}

#[test]
fn codec_refuses_packets_over_the_limit() {
    let big = msg("/big", vec![OscType::Blob(Bytes::from(vec![1u8; 100]))]);
    for framing in [OscFraming::Osc10, OscFraming::Osc11] {
        let mut codec = OscCodec::new(framing, 64);
        let mut wire = Buffer::new();
        assert!(matches!(
            codec.encode(&big, &mut wire),
            Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: 64
            })
        ));
        assert!(wire.is_empty());
        // Encoded with a roomier codec, refused on input.
        OscCodec::new(framing, 1024)
            .encode(&big, &mut wire)
            .unwrap();
        let before = wire.len();
        assert!(matches!(
            codec.decode(&mut wire),
            Err(Error::InvalidData(_) | Error::LimitExceeded { .. })
        ));
        assert_eq!(wire.len(), before);
    }
}

#[test]
fn codec_keeps_a_malformed_packet_in_the_input() {
    // Osc10: the exact bytes stay.
    let mut codec = OscCodec::new(OscFraming::Osc10, 64);
    let raw = b"\0\0\0\x04abcd\0\0\0\x08/a\0\0,\0\0\0".to_vec();
    let mut wire = Buffer::from(raw.clone());
    assert!(matches!(
        codec.decode(&mut wire),
        Err(Error::InvalidData(_))
    ));
    assert_eq!(wire.to_vec(), raw);
    // Osc11: the frame stays, re-framed.
    let mut codec = OscCodec::new(OscFraming::Osc11, 64);
    let raw = b"\xc0abcd\xc0\xc0/a\0\0,\0\0\0\xc0".to_vec();
    let mut wire = Buffer::from(raw.clone());
    assert!(matches!(
        codec.decode(&mut wire),
        Err(Error::InvalidData(_))
    ));
    assert_eq!(wire.to_vec(), raw);
    // A truncated frame at EOF.
    let mut codec = OscCodec::new(OscFraming::Osc10, 64);
    let mut wire = Buffer::from(&b"\0\0\0\x08/a\0"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    assert!(matches!(
        codec.decode_eof(&mut wire),
        Err(Error::InvalidData(_))
    ));
}

// ---------------------------------------------------------------------------
// Properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = std::string::String> {
        "[^\\x00]{0,9}"
    }

    fn scalar() -> impl Strategy<Value = OscType> {
        prop_oneof![
            any::<i32>().prop_map(OscType::Int),
            any::<u32>().prop_map(|bits| OscType::Float(f32::from_bits(bits))),
            text().prop_map(OscType::String),
            prop::collection::vec(any::<u8>(), 0..9).prop_map(|v| OscType::Blob(Bytes::from(v))),
            any::<i64>().prop_map(OscType::Long),
            (any::<u32>(), any::<u32>())
                .prop_map(|(seconds, fraction)| OscType::Time(OscTime { seconds, fraction })),
            any::<u64>().prop_map(|bits| OscType::Double(f64::from_bits(bits))),
            text().prop_map(OscType::Symbol),
            any::<char>().prop_map(OscType::Char),
            any::<[u8; 4]>().prop_map(|[r, g, b, a]| OscType::Color(OscColor { r, g, b, a })),
            any::<[u8; 4]>().prop_map(|[port, status, data1, data2]| {
                OscType::Midi(OscMidi {
                    port,
                    status,
                    data1,
                    data2,
                })
            }),
            any::<bool>().prop_map(OscType::Bool),
            Just(OscType::Nil),
            Just(OscType::Inf),
        ]
    }

    fn arg() -> impl Strategy<Value = OscType> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(OscType::Array)
        })
    }

    fn message() -> impl Strategy<Value = OscPacket> {
        ("/[^\\x00]{0,9}", prop::collection::vec(arg(), 0..6))
            .prop_map(|(addr, args)| OscPacket::Message(OscMessage { addr, args }))
    }

    fn packet() -> impl Strategy<Value = OscPacket> {
        // Bundles nested up to 3 deep.
        message().prop_recursive(3, 24, 4, |inner| {
            (
                any::<u32>(),
                any::<u32>(),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(seconds, fraction, content)| {
                    OscPacket::Bundle(OscBundle {
                        timetag: OscTime { seconds, fraction },
                        content,
                    })
                })
        })
    }

    /// Equality with floats compared bit for bit (NaN included).
    fn same_arg(a: &OscType, b: &OscType) -> bool {
        match (a, b) {
            (OscType::Float(x), OscType::Float(y)) => x.to_bits() == y.to_bits(),
            (OscType::Double(x), OscType::Double(y)) => x.to_bits() == y.to_bits(),
            (OscType::Array(x), OscType::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_arg(a, b))
            }
            _ => a == b,
        }
    }

    fn same(a: &OscPacket, b: &OscPacket) -> bool {
        match (a, b) {
            (OscPacket::Message(x), OscPacket::Message(y)) => {
                x.addr == y.addr
                    && x.args.len() == y.args.len()
                    && x.args.iter().zip(&y.args).all(|(a, b)| same_arg(a, b))
            }
            (OscPacket::Bundle(x), OscPacket::Bundle(y)) => {
                x.timetag == y.timetag
                    && x.content.len() == y.content.len()
                    && x.content.iter().zip(&y.content).all(|(a, b)| same(a, b))
            }
            _ => false,
        }
    }

    /// Splits `wire` at the given fractions into pieces.
    fn chunk(wire: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points
            .windows(2)
            .map(|w| wire[w[0]..w[1]].to_vec())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encode_then_decode_is_the_identity(packet in packet()) {
            let wire = encode(&packet).unwrap();
            prop_assert_eq!(wire.len() % 4, 0);
            let back = decode(&wire).unwrap();
            prop_assert!(same(&back, &packet), "{:?} != {:?}", back, packet);
            let back = decode_bytes(&wire).unwrap();
            prop_assert!(same(&back, &packet));
            // And the bytes are canonical.
            prop_assert_eq!(encode(&back).unwrap(), wire);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            if let Err(err) = decode(&bytes) {
                prop_assert!(matches!(err, Error::InvalidData(_)));
            }
        }

        #[test]
        fn mutated_packets_never_panic(
            packet in packet(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = encode(&packet).unwrap().to_vec();
            for (at, byte) in edits {
                let i = at.index(wire.len());
                wire[i] = byte;
            }
            let _ = decode(&wire);
            let _ = decode(&wire[..cut.index(wire.len() + 1)]);
        }

        #[test]
        fn codec_decodes_any_chunking(
            packets in prop::collection::vec(packet(), 1..5),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            osc11 in any::<bool>(),
        ) {
            let framing = if osc11 { OscFraming::Osc11 } else { OscFraming::Osc10 };
            let mut codec = OscCodec::new(framing, 1 << 16);
            let mut out = Buffer::new();
            for packet in &packets {
                codec.encode(packet, &mut out).unwrap();
            }
            let wire = out.to_vec();
            let mut input = Buffer::new();
            let mut got = Vec::new();
            for piece in chunk(&wire, &cuts) {
                input.push(Bytes::from(piece));
                while let Some(packet) = codec.decode(&mut input).unwrap() {
                    got.push(packet);
                }
            }
            prop_assert_eq!(codec.decode_eof(&mut input).unwrap(), None);
            prop_assert!(input.is_empty());
            prop_assert_eq!(got.len(), packets.len());
            for (a, b) in got.iter().zip(&packets) {
                prop_assert!(same(a, b), "{:?} != {:?}", a, b);
            }
        }
    }
}
