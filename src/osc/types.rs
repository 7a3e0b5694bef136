//! The OSC data model: time tags, arguments, messages, bundles, packets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::{Error, Result};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// An OSC time tag: a 64-bit NTP timestamp, seconds since 1900-01-01 UTC
/// and a binary fraction of a second (units of 2⁻³² s).
///
/// The special value [`OscTime::IMMEDIATELY`] (seconds 0, fraction 1)
/// tells the receiver to act on a bundle as soon as it arrives.
///
/// Conversions with [`SystemTime`]: `From<SystemTime>` rounds to the
/// nearest fraction and wraps the seconds modulo 2³² (NTP eras), and
/// `TryFrom<OscTime> for SystemTime` reads the seconds as RFC 4330
/// suggests — a value with its high bit set lies in 1968–2036, one without
/// it in 2036–2104 — so every time from 1968-01-20 to 2104-02-26 survives
/// the round trip to the nanosecond.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use evstream::osc::OscTime;
///
/// let unix = OscTime::from(UNIX_EPOCH);
/// assert_eq!(unix, OscTime { seconds: 2_208_988_800, fraction: 0 });
///
/// let half = OscTime::from(UNIX_EPOCH + Duration::from_millis(500));
/// assert_eq!(half.fraction, 1 << 31);
///
/// let back = SystemTime::try_from(half)?;
/// assert_eq!(back, UNIX_EPOCH + Duration::from_millis(500));
/// # Ok::<(), evstream::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OscTime {
    /// Whole seconds since 1900-01-01 00:00:00 UTC (modulo 2³²).
    pub seconds: u32,
    /// The fraction of a second, in units of 2⁻³² s.
    pub fraction: u32,
}

impl OscTime {
    /// The time tag meaning "immediately": seconds 0, fraction 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::OscTime;
    ///
    /// assert_eq!(OscTime::IMMEDIATELY, OscTime { seconds: 0, fraction: 1 });
    /// assert!(OscTime::IMMEDIATELY.is_immediately());
    /// ```
    pub const IMMEDIATELY: OscTime = OscTime {
        seconds: 0,
        fraction: 1,
    };

    /// Whether this is [`OscTime::IMMEDIATELY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::OscTime;
    ///
    /// assert!(!OscTime { seconds: 0, fraction: 0 }.is_immediately());
    /// ```
    pub fn is_immediately(&self) -> bool {
        *self == OscTime::IMMEDIATELY
    }

    /// The current system time as a time tag.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::OscTime;
    ///
    /// let now = OscTime::now();
    /// assert!(now.seconds > 3_900_000_000); // after 2023
    /// ```
    pub fn now() -> OscTime {
        OscTime::from(SystemTime::now())
    }
}

impl From<SystemTime> for OscTime {
    /// The NTP time tag of `time`, rounded to the nearest 2⁻³² s; seconds
    /// outside one NTP era wrap modulo 2³².
    fn from(time: SystemTime) -> OscTime {
        // Signed seconds since the Unix epoch plus nanoseconds in [0, 1e9).
        let (secs, nanos): (i128, u32) = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => (i128::from(after.as_secs()), after.subsec_nanos()),
            Err(before) => {
                let before = before.duration();
                let mut secs = -i128::from(before.as_secs());
                let mut nanos = before.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                (secs, nanos)
            }
        };
        // Round to the nearest fraction; 999_999_999 ns still fits in u32.
        let fraction = ((u64::from(nanos) << 32) + 500_000_000) / 1_000_000_000;
        let (carry, fraction) = if fraction > u64::from(u32::MAX) {
            (1, 0)
        } else {
            (0, fraction as u32)
        };
        let ntp = secs + i128::from(NTP_UNIX_OFFSET) + carry;
        OscTime {
            seconds: ntp.rem_euclid(1 << 32) as u32,
            fraction,
        }
    }
}

impl TryFrom<OscTime> for SystemTime {
    type Error = Error;

    /// The system time a time tag stands for (see [`OscTime`] for how the
    /// era is chosen).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for [`OscTime::IMMEDIATELY`], which is not a
    /// point in time, or for a time the platform cannot represent.
    fn try_from(tag: OscTime) -> Result<SystemTime> {
        if tag.is_immediately() {
            return Err(Error::InvalidInput(
                "the OSC time tag \"immediately\" is not a point in time".into(),
            ));
        }
        // RFC 4330 section 3: high bit set → 1968..2036, clear → 2036..2104.
        let ntp_secs = if tag.seconds & 0x8000_0000 != 0 {
            u64::from(tag.seconds)
        } else {
            u64::from(tag.seconds) + (1 << 32)
        };
        let nanos = (u64::from(tag.fraction) * 1_000_000_000 + (1 << 31)) >> 32;
        let out_of_range = || Error::InvalidInput(format!("OSC time tag {tag:?} out of range"));
        // Duration::new carries a rounded-up 1e9 ns into the seconds.
        if ntp_secs >= NTP_UNIX_OFFSET {
            UNIX_EPOCH
                .checked_add(Duration::new(ntp_secs - NTP_UNIX_OFFSET, nanos as u32))
                .ok_or_else(out_of_range)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(NTP_UNIX_OFFSET - ntp_secs))
                .and_then(|t| t.checked_add(Duration::from_nanos(nanos)))
                .ok_or_else(out_of_range)
        }
    }
}

/// An RGBA colour, the OSC `r` type (one byte per channel, in the order
/// red, green, blue, alpha).
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscColor, OscType};
///
/// let red = OscType::Color(OscColor { r: 255, g: 0, b: 0, a: 255 });
/// assert_eq!(red.type_tag(), 'r');
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OscColor {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Alpha (opacity).
    pub a: u8,
}

/// A MIDI message, the OSC `m` type: four bytes, port id, status byte and
/// two data bytes.
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscMidi, OscType};
///
/// // Note on, middle C, velocity 100, on port 0.
/// let note = OscType::Midi(OscMidi { port: 0, status: 0x90, data1: 60, data2: 100 });
/// assert_eq!(note.type_tag(), 'm');
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OscMidi {
    /// The port id.
    pub port: u8,
    /// The status byte.
    pub status: u8,
    /// The first data byte.
    pub data1: u8,
    /// The second data byte.
    pub data2: u8,
}

/// One OSC argument, with the type tag it is sent under.
///
/// | variant | tag | encoding |
/// |---|---|---|
/// | `Int(i32)` | `i` | 32-bit big-endian two's complement |
/// | `Float(f32)` | `f` | 32-bit big-endian IEEE 754 |
/// | `String(String)` | `s` | bytes, NUL, padded to 4 |
/// | `Blob(Bytes)` | `b` | int32 size, bytes, padded to 4 |
/// | `Long(i64)` | `h` | 64-bit big-endian |
/// | `Time(OscTime)` | `t` | 64-bit NTP time tag |
/// | `Double(f64)` | `d` | 64-bit big-endian IEEE 754 |
/// | `Symbol(String)` | `S` | as a string |
/// | `Char(char)` | `c` | the code point as 32 bits |
/// | `Color(OscColor)` | `r` | 4 bytes: r, g, b, a |
/// | `Midi(OscMidi)` | `m` | 4 bytes: port, status, data1, data2 |
/// | `Bool(bool)` | `T` / `F` | no data |
/// | `Nil` | `N` | no data |
/// | `Inf` | `I` | no data (Infinitum) |
/// | `Array(Vec<OscType>)` | `[` … `]` | the elements' data in order |
///
/// Strings (addresses, `s`, `S`) are UTF-8 here; they must not contain NUL.
///
/// # Examples
///
/// ```
/// use evstream::osc::OscType;
///
/// let args: Vec<OscType> = vec![1.into(), 2.5f32.into(), "hi".into(), true.into()];
/// let tags: String = args.iter().map(OscType::type_tag).collect();
/// assert_eq!(tags, "ifsT");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OscType {
    /// `i`: a 32-bit integer.
    Int(i32),
    /// `f`: a 32-bit float.
    Float(f32),
    /// `s`: a string.
    String(String),
    /// `b`: a blob of bytes.
    Blob(Bytes),
    /// `h`: a 64-bit integer.
    Long(i64),
    /// `t`: a time tag.
    Time(OscTime),
    /// `d`: a 64-bit float.
    Double(f64),
    /// `S`: a symbol (sent like a string).
    Symbol(String),
    /// `c`: a character, sent as its 32-bit code point.
    Char(char),
    /// `r`: an RGBA colour.
    Color(OscColor),
    /// `m`: a 4-byte MIDI message.
    Midi(OscMidi),
    /// `T` (true) or `F` (false), without data.
    Bool(bool),
    /// `N`: nil, without data.
    Nil,
    /// `I`: Infinitum, without data.
    Inf,
    /// `[` … `]`: an array of arguments.
    Array(Vec<OscType>),
}

impl OscType {
    /// The type tag character of this argument (`[` for an array, whose
    /// elements follow with their own tags and a closing `]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::OscType;
    ///
    /// assert_eq!(OscType::Bool(false).type_tag(), 'F');
    /// assert_eq!(OscType::Array(vec![]).type_tag(), '[');
    /// ```
    pub fn type_tag(&self) -> char {
        match self {
            OscType::Int(_) => 'i',
            OscType::Float(_) => 'f',
            OscType::String(_) => 's',
            OscType::Blob(_) => 'b',
            OscType::Long(_) => 'h',
            OscType::Time(_) => 't',
            OscType::Double(_) => 'd',
            OscType::Symbol(_) => 'S',
            OscType::Char(_) => 'c',
            OscType::Color(_) => 'r',
            OscType::Midi(_) => 'm',
            OscType::Bool(true) => 'T',
            OscType::Bool(false) => 'F',
            OscType::Nil => 'N',
            OscType::Inf => 'I',
            OscType::Array(_) => '[',
        }
    }
}

macro_rules! osc_type_from {
    ($($from:ty => $variant:ident),* $(,)?) => {$(
        impl From<$from> for OscType {
            #[doc = concat!("`OscType::", stringify!($variant), "`.")]
            fn from(value: $from) -> OscType {
                OscType::$variant(value.into())
            }
        }
    )*};
}

osc_type_from! {
    i32 => Int,
    f32 => Float,
    String => String,
    &str => String,
    Bytes => Blob,
    i64 => Long,
    OscTime => Time,
    f64 => Double,
    char => Char,
    OscColor => Color,
    OscMidi => Midi,
    bool => Bool,
    Vec<OscType> => Array,
}

/// An OSC message: an address pattern and its arguments.
///
/// The address must start with `/`; neither it nor any string argument may
/// contain NUL ([`encode`](super::encode) checks).
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscMessage, OscType};
///
/// let msg = OscMessage::new("/mixer/fader/1", vec![OscType::Float(0.75)]);
/// assert_eq!(msg.addr, "/mixer/fader/1");
/// assert_eq!(msg.args, [OscType::Float(0.75)]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OscMessage {
    /// The OSC address pattern, starting with `/`.
    pub addr: String,
    /// The arguments, in order.
    pub args: Vec<OscType>,
}

impl OscMessage {
    /// A message to `addr` with `args`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::OscMessage;
    ///
    /// let ping = OscMessage::new("/ping", vec![]);
    /// assert!(ping.args.is_empty());
    /// ```
    pub fn new(addr: impl Into<String>, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }
}

/// An OSC bundle: a time tag and packets (messages or further bundles) to
/// be acted on together at that time.
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscBundle, OscMessage, OscPacket, OscTime};
///
/// let bundle = OscBundle::new(OscTime::IMMEDIATELY, vec![
///     OscMessage::new("/a", vec![1.into()]).into(),
///     OscBundle::new(OscTime::IMMEDIATELY, vec![]).into(), // nested
/// ]);
/// assert_eq!(bundle.content.len(), 2);
/// assert!(matches!(bundle.content[1], OscPacket::Bundle(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OscBundle {
    /// When the bundle's contents take effect.
    pub timetag: OscTime,
    /// The elements, in order.
    pub content: Vec<OscPacket>,
}

impl OscBundle {
    /// A bundle of `content` for `timetag`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::{OscBundle, OscTime};
    ///
    /// let empty = OscBundle::new(OscTime::IMMEDIATELY, vec![]);
    /// assert!(empty.content.is_empty());
    /// ```
    pub fn new(timetag: OscTime, content: Vec<OscPacket>) -> OscBundle {
        OscBundle { timetag, content }
    }
}

/// What one OSC datagram or frame holds: a message or a bundle.
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscMessage, OscPacket};
///
/// let packet: OscPacket = OscMessage::new("/x", vec![]).into();
/// assert!(matches!(packet, OscPacket::Message(ref m) if m.addr == "/x"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OscPacket {
    /// A single message.
    Message(OscMessage),
    /// A bundle of packets.
    Bundle(OscBundle),
}

impl From<OscMessage> for OscPacket {
    fn from(message: OscMessage) -> OscPacket {
        OscPacket::Message(message)
    }
}

impl From<OscBundle> for OscPacket {
    fn from(bundle: OscBundle) -> OscPacket {
        OscPacket::Bundle(bundle)
    }
}
