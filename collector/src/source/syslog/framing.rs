//! Splitting a syslog TCP stream into messages (RFC 6587 §3.4): octet counting or delimiters.
//!
//! A connection's first byte decides its framing for good: a digit starts octet counting
//! (`MSG-LEN SP SYSLOG-MSG`, the only framing RFC 5425 allows over TLS), anything else — a
//! syslog message starts with `<` — means messages ended by LF or NUL ("non-transparent
//! framing", what rsyslog and syslog-ng send by default over plain TCP). The framer is a
//! pure state machine fed with whatever the socket returned, so a message split across
//! reads and several messages in one read are the same case.
//!
//! Memory stays bounded by `max_frame` whatever a peer sends: the bytes of a longer message
//! beyond the limit are skipped as they arrive, and the message is kept truncated.

/// How a connection separates its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG` (RFC 6587 §3.4.1, RFC 5425 §4.3).
    OctetCounting,
    /// Each message ended by LF (CR LF) or NUL (RFC 6587 §3.4.2).
    Delimited,
}

/// One message cut from the stream, without its terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) bytes: Vec<u8>,
    /// The message was longer than `max_frame`; `bytes` holds its beginning.
    pub(super) truncated: bool,
}

/// A stream that does not follow its framing; the connection cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FramingError {
    #[error("byte {offset} of the stream: expected a message length (digits, then a space), found byte 0x{found:02x}")]
    BadLength { offset: u64, found: u8 },
    #[error("byte {offset} of the stream: a message length of more than 9 digits")]
    LengthTooLong { offset: u64 },
    #[error("byte {offset} of the stream: a message length of 0")]
    ZeroLength { offset: u64 },
    #[error("the stream ended {missing} bytes before the end of a counted message")]
    Incomplete { missing: usize },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading `MSG-LEN` digits.
    Length { value: usize, digits: u8 },
    /// Reading the `remaining` bytes of a counted message.
    Body { remaining: usize },
    /// Reading a delimited message.
    Line,
}

/// The framing state of one connection.
#[derive(Debug)]
pub(super) struct Framer {
    max_frame: usize,
    framing: Option<Framing>,
    state: State,
    frame: Vec<u8>,
    truncated: bool,
    /// Bytes consumed so far, for error messages.
    offset: u64,
}

impl Framer {
    pub(super) fn new(max_frame: usize) -> Framer {
        Framer { max_frame, framing: None, state: State::Line, frame: Vec::new(), truncated: false, offset: 0 }
    }

    /// The framing the connection uses, once its first byte is known.
    pub(super) fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Feeds the next bytes of the stream; every message they complete is pushed to `out`.
    /// On an error, `out` still holds the messages completed before it.
    pub(super) fn push(&mut self, mut input: &[u8], out: &mut Vec<Frame>) -> Result<(), FramingError> {
        if self.framing.is_none() {
            let Some(&first) = input.first() else { return Ok(()) };
            if first.is_ascii_digit() {
                self.framing = Some(Framing::OctetCounting);
                self.state = State::Length { value: 0, digits: 0 };
            } else {
                self.framing = Some(Framing::Delimited);
            }
        }
        while !input.is_empty() {
            let used = match self.state {
                State::Length { value, digits } => {
                    let b = input[0];
                    match b {
                        b'0'..=b'9' if digits >= 9 => return Err(FramingError::LengthTooLong { offset: self.offset }),
                        b'0'..=b'9' => {
                            let value = value * 10 + usize::from(b - b'0');
                            self.state = State::Length { value, digits: digits + 1 };
                        }
                        b' ' if digits > 0 && value == 0 => {
                            return Err(FramingError::ZeroLength { offset: self.offset });
                        }
                        b' ' if digits > 0 => self.state = State::Body { remaining: value },
                        // Some senders end a counted message with a newline outside the count.
                        b'\n' | b'\r' | b'\0' if digits == 0 => {}
                        _ => return Err(FramingError::BadLength { offset: self.offset, found: b }),
                    }
                    1
                }
                State::Body { remaining } => {
                    let n = remaining.min(input.len());
                    self.append(&input[..n]);
                    if n == remaining {
                        self.emit(out);
                        self.state = State::Length { value: 0, digits: 0 };
                    } else {
                        self.state = State::Body { remaining: remaining - n };
                    }
                    n
                }
                State::Line => match input.iter().position(|&b| b == b'\n' || b == b'\0') {
                    Some(end) => {
                        self.append(&input[..end]);
                        self.emit(out);
                        end + 1
                    }
                    None => {
                        self.append(input);
                        input.len()
                    }
                },
            };
            input = &input[used..];
            self.offset += used as u64;
        }
        Ok(())
    }

    /// The stream ended: an unterminated last line is still a message; a counted message
    /// cut short is an error (its beginning is not delivered: the sender will not know).
    pub(super) fn finish(&mut self) -> Result<Option<Frame>, FramingError> {
        match self.state {
            State::Line => {
                let mut out = Vec::new();
                self.emit(&mut out);
                Ok(out.pop())
            }
            State::Body { remaining } => Err(FramingError::Incomplete { missing: remaining }),
            State::Length { digits: 0, .. } => Ok(None),
            State::Length { value, .. } => Err(FramingError::Incomplete { missing: value }),
        }
    }

    /// Keeps what fits under `max_frame` and notes that the rest was skipped.
    fn append(&mut self, bytes: &[u8]) {
        let room = self.max_frame - self.frame.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        self.frame.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Hands out the current message without its terminator; empty lines are not messages.
    fn emit(&mut self, out: &mut Vec<Frame>) {
        let mut bytes = std::mem::take(&mut self.frame);
        let truncated = std::mem::take(&mut self.truncated);
        while let Some(b'\n' | b'\r' | b'\0') = bytes.last() {
            bytes.pop();
        }
        if !bytes.is_empty() {
            out.push(Frame { bytes, truncated });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `stream` fed in one piece, then at every possible split point, and checks that
    /// each way yields `expected` (as text, `…` marking a truncated message).
    fn check(max_frame: usize, stream: &[u8], expected: &[&str]) {
        let render = |frames: Vec<Frame>| -> Vec<String> {
            frames
                .into_iter()
                .map(|f| format!("{}{}", String::from_utf8_lossy(&f.bytes), if f.truncated { "…" } else { "" }))
                .collect()
        };
        for split in 0..=stream.len() {
            let mut framer = Framer::new(max_frame);
            let mut out = Vec::new();
            framer.push(&stream[..split], &mut out).unwrap();
            framer.push(&stream[split..], &mut out).unwrap();
            out.extend(framer.finish().unwrap());
            assert_eq!(render(out), expected, "split at byte {split}");
        }
    }

    #[test]
    fn octet_counting() {
        check(64, b"5 <1>ab3 <2>", &["<1>ab", "<2>"]);
        // A newline counted in the message, and one sent after it, are not part of the message.
        check(64, b"6 <1>ab\n\n4 <2>c\r\n", &["<1>ab", "<2>c"]);
        let mut framer = Framer::new(64);
        framer.push(b"12", &mut Vec::new()).unwrap();
        assert_eq!(framer.framing(), Some(Framing::OctetCounting));
    }

    #[test]
    fn delimited_by_lf_crlf_or_nul() {
        check(64, b"<1>a\n<2>b\r\n\n<3>c\0<4>d", &["<1>a", "<2>b", "<3>c", "<4>d"]);
        let mut framer = Framer::new(64);
        framer.push(b"<", &mut Vec::new()).unwrap();
        assert_eq!(framer.framing(), Some(Framing::Delimited));
    }

    #[test]
    fn oversized_messages_are_truncated_and_the_next_one_is_intact() {
        check(4, b"10 <1>abcdefg2 <2", &["<1>a…", "<2"]);
        check(4, b"<1>abcdefg\n<2\n", &["<1>a…", "<2"]);
        // Exactly max_frame bytes is not truncated.
        check(4, b"4 <1>a", &["<1>a"]);
        check(4, b"<1>a\n", &["<1>a"]);
    }

    #[test]
    fn a_stream_out_of_frame_is_an_error() {
        let err = |max: usize, stream: &[u8]| {
            let mut framer = Framer::new(max);
            let mut out = Vec::new();
            let e = framer.push(stream, &mut out).unwrap_err();
            (out.len(), e)
        };
        assert_eq!(err(64, b"3 <1>x <2>"), (1, FramingError::BadLength { offset: 5, found: b'x' }));
        assert_eq!(err(64, b"1234567890 x"), (0, FramingError::LengthTooLong { offset: 9 }));
        assert_eq!(err(64, b"0 <1>"), (0, FramingError::ZeroLength { offset: 1 }));
        assert_eq!(
            err(64, b"12<1>").1.to_string(),
            "byte 2 of the stream: expected a message length (digits, then a space), found byte 0x3c"
        );

        let mut framer = Framer::new(64);
        framer.push(b"10 <1>ab", &mut Vec::new()).unwrap();
        assert_eq!(framer.finish(), Err(FramingError::Incomplete { missing: 5 }));
        let mut framer = Framer::new(64);
        framer.push(b"3 <1>1", &mut Vec::new()).unwrap();
        assert_eq!(framer.finish(), Err(FramingError::Incomplete { missing: 1 }));
        let mut framer = Framer::new(64);
        assert_eq!(framer.finish(), Ok(None), "an empty connection is not an error");
    }
}
