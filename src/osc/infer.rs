//! TouchDesigner's `sendOSC` type inference: plain values to OSC arguments.

use bytes::Bytes;

use super::types::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use super::MAX_DEPTH;
use crate::error::{Error, Result};

/// A plain value to send over OSC, whose OSC type [`infer_args`] chooses —
/// the values TouchDesigner's `Peer.sendOSC` accepts from Python.
///
/// Build one with `into()` from Rust values: integers (`i8`…`i64`, `u8`…`u32`;
/// `u64` and `usize` through `try_into`), floats, `bool`, `&str`/`String`,
/// `Bytes`/`Vec<u8>`/`&[u8]` (a blob, like Python `bytes`), `Option<T>`
/// (`None` becomes [`OscValue::None`]) and `Vec<OscValue>` (a list).
///
/// # Examples
///
/// ```
/// use evstream::osc::OscValue;
///
/// let values: Vec<OscValue> = vec![
///     1.into(),
///     b"abc".to_vec().into(),
///     "apple".into(),
///     vec![OscValue::from(6), 7.into(), 8.into()].into(),
///     true.into(),
///     Option::<i32>::None.into(),
///     f64::INFINITY.into(),
/// ];
/// assert_eq!(values[1], OscValue::Bytes(bytes::Bytes::from_static(b"abc")));
/// assert_eq!(values[5], OscValue::None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OscValue {
    /// An integer (Python `int`).
    Int(i64),
    /// A floating-point number (Python `float`).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// No value (Python `None`).
    None,
    /// A string.
    Str(String),
    /// Raw bytes, sent as a blob (Python `bytes`/`bytearray`).
    Bytes(Bytes),
    /// A list of values (Python `list`).
    List(Vec<OscValue>),
}

macro_rules! value_from {
    ($($from:ty => $variant:ident),* $(,)?) => {$(
        impl From<$from> for OscValue {
            #[doc = concat!("`OscValue::", stringify!($variant), "`.")]
            fn from(value: $from) -> OscValue {
                OscValue::$variant(value.into())
            }
        }
    )*};
}

value_from! {
    i8 => Int, i16 => Int, i32 => Int, i64 => Int,
    u8 => Int, u16 => Int, u32 => Int,
    f32 => Float, f64 => Float,
    bool => Bool,
    &str => Str, String => Str,
    Bytes => Bytes, Vec<u8> => Bytes,
    Vec<OscValue> => List,
}

impl From<&[u8]> for OscValue {
    /// `OscValue::Bytes`, copied.
    fn from(value: &[u8]) -> OscValue {
        OscValue::Bytes(Bytes::copy_from_slice(value))
    }
}

impl<T: Into<OscValue>> From<Option<T>> for OscValue {
    /// The value, or `OscValue::None`.
    fn from(value: Option<T>) -> OscValue {
        value.map_or(OscValue::None, Into::into)
    }
}

macro_rules! value_try_from {
    ($($from:ty),*) => {$(
        impl TryFrom<$from> for OscValue {
            type Error = Error;

            /// `OscValue::Int`.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidInput`] above `i64::MAX`.
            fn try_from(value: $from) -> Result<OscValue> {
                i64::try_from(value).map(OscValue::Int).map_err(|_| {
                    Error::InvalidInput(format!("integer {value} too large for OSC"))
                })
            }
        }
    )*};
}

value_try_from!(u64, usize, isize);

/// How [`infer_args`] and [`osc_packets`] map values to OSC types: the
/// keyword arguments of TouchDesigner's `sendOSC`.
///
/// The default is TouchDesigner's: `as_bundle: false`,
/// `use_non_standard_types: true`, `use_64bit_precision: false`.
///
/// # Examples
///
/// ```
/// use evstream::osc::SendOscOptions;
///
/// let options = SendOscOptions::default().as_bundle(true);
/// assert!(options.as_bundle && options.use_non_standard_types && !options.use_64bit_precision);
///
/// let literal = SendOscOptions { use_64bit_precision: true, ..SendOscOptions::default() };
/// assert_eq!(literal, SendOscOptions::new().use_64bit_precision(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendOscOptions {
    /// Send all messages inside a single bundle (time tag "immediately").
    pub as_bundle: bool,
    /// Use the non-standard OSC types `h`, `d`, `T`, `F`, `N`, `I` and
    /// arrays; without them only `i`, `f`, `s` and `b` are sent.
    pub use_non_standard_types: bool,
    /// Send every integer as `h` and every float as `d`. Requires
    /// `use_non_standard_types`.
    pub use_64bit_precision: bool,
}

impl Default for SendOscOptions {
    fn default() -> SendOscOptions {
        SendOscOptions {
            as_bundle: false,
            use_non_standard_types: true,
            use_64bit_precision: false,
        }
    }
}

impl SendOscOptions {
    /// The defaults (see [`SendOscOptions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::SendOscOptions;
    ///
    /// assert_eq!(SendOscOptions::new(), SendOscOptions::default());
    /// ```
    pub fn new() -> SendOscOptions {
        SendOscOptions::default()
    }

    /// Sets [`as_bundle`](SendOscOptions#structfield.as_bundle).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::SendOscOptions;
    ///
    /// assert!(SendOscOptions::new().as_bundle(true).as_bundle);
    /// ```
    #[must_use]
    pub fn as_bundle(mut self, yes: bool) -> SendOscOptions {
        self.as_bundle = yes;
        self
    }

    /// Sets [`use_non_standard_types`](SendOscOptions#structfield.use_non_standard_types).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::SendOscOptions;
    ///
    /// assert!(!SendOscOptions::new().use_non_standard_types(false).use_non_standard_types);
    /// ```
    #[must_use]
    pub fn use_non_standard_types(mut self, yes: bool) -> SendOscOptions {
        self.use_non_standard_types = yes;
        self
    }

    /// Sets [`use_64bit_precision`](SendOscOptions#structfield.use_64bit_precision).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::SendOscOptions;
    ///
    /// assert!(SendOscOptions::new().use_64bit_precision(true).use_64bit_precision);
    /// ```
    #[must_use]
    pub fn use_64bit_precision(mut self, yes: bool) -> SendOscOptions {
        self.use_64bit_precision = yes;
        self
    }

    fn check(&self) -> Result<()> {
        if self.use_64bit_precision && !self.use_non_standard_types {
            return Err(Error::InvalidInput(
                "use_64bit_precision requires use_non_standard_types".into(),
            ));
        }
        Ok(())
    }
}

/// Chooses the OSC type of each value as TouchDesigner's `sendOSC` does.
///
/// | value | non-standard types (default) | + 64-bit precision | standard types only |
/// |---|---|---|---|
/// | `Int` fitting in 32 bits | `i` | `h` | `i` |
/// | `Int` beyond 32 bits | `h` | `h` | error |
/// | `Float` | `f` | `d` | `f` |
/// | `Float(+∞)` | `I` (Infinitum) | `I` | `f` |
/// | `Bool` | `T` / `F` | `T` / `F` | `i` 1 / 0 |
/// | `None` | `N` (nil) | `N` | `i` 0 |
/// | `Str` | `s` | `s` | `s` |
/// | `Bytes` | `b` (blob) | `b` | `b` |
/// | `List` | `[` … `]` array of its elements | array | its elements, flattened into the message |
///
/// Negative infinity and NaN are sent as ordinary floats (`f`, or `d`
/// with 64-bit precision): Infinitum carries no sign. A `Float` sent as
/// `f` is rounded to the nearest `f32` (values beyond its range become
/// infinite).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use evstream::osc::{infer_args, OscType, OscValue, SendOscOptions};
///
/// // TouchDesigner's example: [1, b'abc', 'apple', [6,7,8], True, None, float("infinity")]
/// let values: Vec<OscValue> = vec![
///     1.into(), b"abc".to_vec().into(), "apple".into(),
///     vec![OscValue::from(6), 7.into(), 8.into()].into(), true.into(), OscValue::None,
///     f64::INFINITY.into(),
/// ];
/// let args = infer_args(&values, &SendOscOptions::default())?;
/// assert_eq!(args, [
///     OscType::Int(1), OscType::Blob(Bytes::from_static(b"abc")), OscType::String("apple".into()),
///     OscType::Array(vec![OscType::Int(6), OscType::Int(7), OscType::Int(8)]),
///     OscType::Bool(true), OscType::Nil, OscType::Inf,
/// ]);
///
/// let standard = SendOscOptions::default().use_non_standard_types(false);
/// let args = infer_args(&values, &standard)?;
/// let tags: String = args.iter().map(OscType::type_tag).collect();
/// assert_eq!(tags, "ibsiiiiif");
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidInput`] for an integer outside 32 bits without
/// non-standard types, for a string containing NUL, for lists nested more
/// than [`MAX_DEPTH`] deep as arrays, and for `use_64bit_precision`
/// without `use_non_standard_types`.
pub fn infer_args(values: &[OscValue], options: &SendOscOptions) -> Result<Vec<OscType>> {
    options.check()?;
    let mut args = Vec::with_capacity(values.len());
    infer_into(values, options, &mut args, 1)?;
    Ok(args)
}

/// Appends the arguments for `values`, which are inside `depth - 1` arrays.
fn infer_into(
    values: &[OscValue],
    options: &SendOscOptions,
    out: &mut Vec<OscType>,
    depth: usize,
) -> Result<()> {
    let extended = options.use_non_standard_types;
    let wide = options.use_64bit_precision;
    for value in values {
        let arg = match value {
            OscValue::Int(v) => match i32::try_from(*v) {
                Ok(small) if !wide => OscType::Int(small),
                _ if extended => OscType::Long(*v),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "integer {v} too large for a 32-bit OSC int \
                         (use_non_standard_types allows 64-bit)"
                    )))
                }
            },
            OscValue::Float(v) if *v == f64::INFINITY && extended => OscType::Inf,
            OscValue::Float(v) if wide => OscType::Double(*v),
            OscValue::Float(v) => OscType::Float(*v as f32),
            OscValue::Bool(b) if extended => OscType::Bool(*b),
            OscValue::Bool(b) => OscType::Int(i32::from(*b)),
            OscValue::None if extended => OscType::Nil,
            OscValue::None => OscType::Int(0),
            OscValue::Str(s) => {
                if s.contains('\0') {
                    return Err(Error::InvalidInput(format!(
                        "OSC string {s:?} contains a NUL byte"
                    )));
                }
                OscType::String(s.clone())
            }
            OscValue::Bytes(b) => OscType::Blob(b.clone()),
            OscValue::List(items) if extended => {
                if depth > MAX_DEPTH {
                    return Err(Error::InvalidInput(format!(
                        "lists nested more than {MAX_DEPTH} deep for OSC arrays"
                    )));
                }
                let mut elements = Vec::with_capacity(items.len());
                infer_into(items, options, &mut elements, depth + 1)?;
                OscType::Array(elements)
            }
            OscValue::List(items) => {
                infer_into(items, options, out, depth)?;
                continue;
            }
        };
        out.push(arg);
    }
    Ok(())
}

/// One message to `addr` with `values` typed by [`infer_args`].
///
/// # Examples
///
/// ```
/// use evstream::osc::{osc_message, OscType, SendOscOptions};
///
/// let msg = osc_message("/abc", &[1.5.into(), "x".into()], &SendOscOptions::default())?;
/// assert_eq!(msg.args, [OscType::Float(1.5), OscType::String("x".into())]);
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidInput`] for an address that does not start with `/` or
/// contains NUL, and as [`infer_args`].
pub fn osc_message(
    addr: &str,
    values: &[OscValue],
    options: &SendOscOptions,
) -> Result<OscMessage> {
    if !addr.starts_with('/') {
        return Err(Error::InvalidInput(format!(
            "OSC address {addr:?} does not start with '/'"
        )));
    }
    if addr.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "OSC address {addr:?} contains a NUL byte"
        )));
    }
    Ok(OscMessage {
        addr: addr.to_owned(),
        args: infer_args(values, options)?,
    })
}

/// The packets TouchDesigner's `sendOSC(addr1, values1, addr2, values2, …)`
/// sends: one message per `(address, values)` pair, or with
/// [`as_bundle`](SendOscOptions#structfield.as_bundle) a single bundle
/// (time tag [`OscTime::IMMEDIATELY`]) holding them all — even when there
/// are none.
///
/// # Examples
///
/// ```
/// use evstream::osc::{osc_packets, OscPacket, OscValue, SendOscOptions};
///
/// let pairs = [("/a", vec![OscValue::from(1)]), ("/b", vec![])];
/// let separate = osc_packets(&pairs, &SendOscOptions::default())?;
/// assert_eq!(separate.len(), 2);
///
/// let bundled = osc_packets(&pairs, &SendOscOptions::default().as_bundle(true))?;
/// let [OscPacket::Bundle(bundle)] = &bundled[..] else { panic!("one bundle") };
/// assert_eq!(bundle.content.len(), 2);
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// As [`osc_message`], for the first pair that fails.
pub fn osc_packets<A: AsRef<str>, V: AsRef<[OscValue]>>(
    messages: &[(A, V)],
    options: &SendOscOptions,
) -> Result<Vec<OscPacket>> {
    options.check()?;
    let messages = messages
        .iter()
        .map(|(addr, values)| {
            osc_message(addr.as_ref(), values.as_ref(), options).map(OscPacket::Message)
        })
        .collect::<Result<Vec<_>>>()?;
    if options.as_bundle {
        Ok(vec![OscPacket::Bundle(OscBundle {
            timetag: OscTime::IMMEDIATELY,
            content: messages,
        })])
    } else {
        Ok(messages)
    }
}
