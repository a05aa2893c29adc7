//! The shape of a recording file, before any event is decoded: which format it is (dispatch
//! lines or one JSON array of messages), and a JSON array cut into its elements as the bytes
//! arrive, so that a bad element costs that element only and memory does not grow with the
//! array. Decoding each line or element into an [`Event`](crate::event::Event) is
//! [`event`](crate::event)'s.
//!
//! **All or nothing per line, never per file:** a line or an element that does not decode is
//! one malformed [`Place`]; what comes before and after it still counts.

/// The UTF-8 byte order mark some editors put in front of a file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// What a recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Gateway dispatches, one JSON object per line (`mjlink record`).
    Lines,
    /// One JSON array of messages (a REST history dump), possibly over many lines.
    Array,
}

/// Where in a file a malformed piece of input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// The file itself (it could not be read).
    File,
    /// A line of dispatch lines, from 1.
    Line(u64),
    /// An element of a JSON array, from 0 (as `jq '.[N]'` names it).
    Element(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::File => f.write_str("file"),
            Place::Line(line) => write!(f, "line {line}"),
            Place::Element(index) => write!(f, "element {index}"),
        }
    }
}

/// The format of a file whose first non-blank byte (after a byte order mark) is `[`, from
/// its first line and the next non-blank line. A file starting with anything else is
/// [`Format::Lines`].
///
/// `first_line` is the first line (without BOM), `whole` whether it ended within the bytes
/// looked at (a line too long to look at whole is an array written on one line: no dispatch
/// line is that long). The first line is a line of its own, not the start of an array, when
/// its brackets close before its end (`[1,2]` followed by dispatch lines, `[12:00] log`), or
/// when the next non-blank line is a dispatch line (a garbled first line).
pub fn detect(first_line: &[u8], whole: bool, next_line: Option<&[u8]>) -> Format {
    let first = trim(first_line);
    if !first.starts_with(b"[") {
        return Format::Lines;
    }
    if !whole {
        return Format::Array;
    }
    match closing(first) {
        // One array on one line: the whole file when nothing follows.
        Some(end) if end + 1 == first.len() => match next_line {
            None => Format::Array,
            Some(_) => Format::Lines,
        },
        // Something after the closing bracket on the same line: not JSON, a line.
        Some(_) => Format::Lines,
        // The array goes on; unless the next line is a dispatch of its own.
        None => match next_line {
            Some(next) if looks_like_dispatch(next) => Format::Lines,
            _ => Format::Array,
        },
    }
}

/// Whether a line is a gateway dispatch (an object with `op` or `t`), not an element of an
/// array (which ends with a comma, or is a message without `op`).
fn looks_like_dispatch(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        op: Option<i64>,
        #[serde(borrow)]
        t: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Frame<'_>>(trim(line)) {
        Ok(frame) => frame.op.is_some() || frame.t.is_some(),
        Err(_) => false,
    }
}

/// Where the bracket that opens `bytes` closes (JSON strings skipped), if it does.
fn closing(bytes: &[u8]) -> Option<usize> {
    let mut scan = Scan::default();
    for (at, &byte) in bytes.iter().enumerate() {
        scan.step(byte);
        if scan.depth == 0 && !scan.in_string && (byte == b']' || byte == b'}') {
            return Some(at);
        }
    }
    None
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |end| end + 1);
    &bytes[start..end.max(start)]
}

/// JSON's nesting as bytes go by: depth of `[`/`{` outside strings.
#[derive(Debug, Default, Clone)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    fn step(&mut self, byte: u8) {
        if self.in_string {
            match byte {
                _ if self.escaped => self.escaped = false,
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                // A string never holds a raw line break: this one was cut; resynchronize.
                b'\n' => self.in_string = false,
                _ => {}
            }
            return;
        }
        match byte {
            b'"' => self.in_string = true,
            b'[' | b'{' => self.depth += 1,
            b']' | b'}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// One piece of a JSON array, as [`ArrayElements`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// An element's bytes (to decode; no white space around them), with its index.
    Element { index: u64, bytes: Vec<u8> },
    /// An element, or text where an element or the array's end should be, that is not one:
    /// counted, with the reason.
    Bad { index: u64, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the opening `[`.
    Open,
    /// Between elements (after `[` or a comma).
    Between,
    /// Inside an element.
    Inside,
    /// After the closing `]`.
    Closed,
    /// After text that follows the closing `]` (reported once).
    Trailing,
}

/// A JSON array cut into its elements as bytes arrive (a push parser): only the element
/// being read is held, up to `cap` bytes (a longer one is skipped as [`Piece::Bad`]).
#[derive(Debug, Clone)]
pub struct ArrayElements {
    cap: usize,
    stage: Stage,
    scan: Scan,
    index: u64,
    element: Vec<u8>,
    too_long: bool,
}

impl ArrayElements {
    pub fn new(cap: usize) -> ArrayElements {
        ArrayElements {
            cap,
            stage: Stage::Open,
            scan: Scan::default(),
            index: 0,
            element: Vec::new(),
            too_long: false,
        }
    }

    /// Reads `bytes` until a piece is complete: returns how many bytes it used and the piece,
    /// if one completed (call again with the rest).
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Piece>) {
        for (at, &byte) in bytes.iter().enumerate() {
            if let Some(piece) = self.step(byte) {
                return (at + 1, Some(piece));
            }
        }
        (bytes.len(), None)
    }

    /// The input ended: an element cut short, or an array never closed.
    pub fn finish(&mut self) -> Option<Piece> {
        match self.stage {
            Stage::Inside => {
                self.stage = Stage::Closed;
                let index = self.index;
                self.element.clear();
                Some(Piece::Bad {
                    index,
                    reason: "cut short: the file ends inside it".to_string(),
                })
            }
            Stage::Between | Stage::Open => {
                self.stage = Stage::Closed;
                Some(Piece::Bad {
                    index: self.index,
                    reason: "cut short: the array is never closed with ']'".to_string(),
                })
            }
            Stage::Closed | Stage::Trailing => None,
        }
    }

    /// Whether the array's closing `]` was read (what follows is not the array's).
    pub fn closed(&self) -> bool {
        matches!(self.stage, Stage::Closed | Stage::Trailing)
    }

    /// How many elements (good or bad) were found so far.
    pub fn elements(&self) -> u64 {
        self.index
    }

    fn step(&mut self, byte: u8) -> Option<Piece> {
        match self.stage {
            Stage::Open => {
                if byte == b'[' {
                    self.stage = Stage::Between;
                } else if !byte.is_ascii_whitespace() {
                    self.stage = Stage::Trailing;
                    return Some(Piece::Bad {
                        index: 0,
                        reason: "not a JSON array".to_string(),
                    });
                }
                None
            }
            Stage::Between => {
                match byte {
                    b']' => self.stage = Stage::Closed,
                    // An empty element (`[1,,2]`, a trailing comma) is skipped.
                    b',' => {}
                    _ if byte.is_ascii_whitespace() => {}
                    _ => {
                        self.stage = Stage::Inside;
                        self.scan = Scan::default();
                        self.element.clear();
                        self.too_long = false;
                        self.push(byte);
                    }
                }
                None
            }
            Stage::Inside => {
                if self.scan.depth == 0 && !self.scan.in_string && (byte == b',' || byte == b']') {
                    self.stage = if byte == b']' {
                        Stage::Closed
                    } else {
                        Stage::Between
                    };
                    return Some(self.complete());
                }
                self.push(byte);
                None
            }
            Stage::Closed => {
                if byte.is_ascii_whitespace() {
                    return None;
                }
                self.stage = Stage::Trailing;
                Some(Piece::Bad {
                    index: self.index,
                    reason: "text after the end of the array (ignored)".to_string(),
                })
            }
            Stage::Trailing => None,
        }
    }

    fn push(&mut self, byte: u8) {
        self.scan.step(byte);
        if self.element.len() < self.cap {
            self.element.push(byte);
        } else {
            self.too_long = true;
        }
    }

    fn complete(&mut self) -> Piece {
        let index = self.index;
        self.index += 1;
        let mut bytes = std::mem::take(&mut self.element);
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |end| end + 1);
        bytes.truncate(end);
        if self.too_long {
            Piece::Bad {
                index,
                reason: format!("element longer than {} bytes", self.cap),
            }
        } else {
            Piece::Element { index, bytes }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(input: &[u8], chunk: usize) -> Vec<Piece> {
        let mut elements = ArrayElements::new(1024);
        let mut found = Vec::new();
        for mut part in input.chunks(chunk) {
            while !part.is_empty() {
                let (used, piece) = elements.feed(part);
                found.extend(piece);
                part = &part[used..];
            }
        }
        found.extend(elements.finish());
        found
    }

    fn element(index: u64, text: &str) -> Piece {
        Piece::Element {
            index,
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn an_array_is_cut_into_its_elements_whatever_the_chunks() {
        let input = br#" [ {"id":"1","c":"a,]}\"b"} , {"id":"2","e":[1,{"x":[]}]},3 ]  "#;
        for chunk in [1, 2, 5, input.len()] {
            assert_eq!(
                pieces(input, chunk),
                vec![
                    element(0, r#"{"id":"1","c":"a,]}\"b"}"#),
                    element(1, r#"{"id":"2","e":[1,{"x":[]}]}"#),
                    element(2, "3"),
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn an_array_cut_short_keeps_every_element_before_the_cut() {
        let found = pieces(br#"[{"id":"1"},{"id":"2"},{"id":"3","con"#, 7);
        assert_eq!(
            found[..2],
            [element(0, r#"{"id":"1"}"#), element(1, r#"{"id":"2"}"#)]
        );
        assert!(matches!(&found[2], Piece::Bad { index: 2, reason } if reason.contains("cut short")));
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn a_bad_byte_costs_its_element_only() {
        let found = pieces(b"[\n  {\"id\":\"1\",\"c\":\"b\xFFd\"},\n  {\"id\":\"2\"}\n]\n", 3);
        assert_eq!(found.len(), 2, "{found:?}");
        let damaged = Piece::Element {
            index: 0,
            bytes: b"{\"id\":\"1\",\"c\":\"b\xFFd\"}".to_vec(),
        };
        assert_eq!(found[0], damaged);
        assert_eq!(found[1], element(1, "{\"id\":\"2\"}"));
    }

    #[test]
    fn an_element_over_the_cap_is_bad_and_the_next_is_read() {
        let mut elements = ArrayElements::new(4);
        let (used, piece) = elements.feed(b"[\"long string\",1]");
        assert!(matches!(piece, Some(Piece::Bad { index: 0, .. })), "{piece:?}");
        let (_, piece) = elements.feed(&b"[\"long string\",1]"[used..]);
        assert_eq!(piece, Some(element(1, "1")));
    }

    #[test]
    fn text_after_the_array_is_reported_once() {
        let found = pieces(b"[1] x y", 2);
        assert_eq!(found.len(), 2);
        assert!(matches!(&found[1], Piece::Bad { reason, .. } if reason.contains("after the end")));
    }

    #[test]
    fn detect_tells_an_array_from_dispatch_lines() {
        let dispatch = br#"{"op":0,"t":"MESSAGE_CREATE","d":{"id":"1"}}"#;
        // A history dump, pretty-printed, one element per line, or on one line.
        assert_eq!(detect(b"[", true, Some(b"  {")), Format::Array);
        assert_eq!(
            detect(br#"[{"id":"1"},"#, true, Some(br#"{"id":"2"}]"#)),
            Format::Array
        );
        assert_eq!(detect(br#"[{"id":"1"}]"#, true, None), Format::Array);
        assert_eq!(detect(br#"[{"id":"1"},{"id":"#, false, None), Format::Array);
        // Dispatch lines whose first line starts with '[': a garbled line, a log line, an
        // array on a line of its own followed by more lines.
        assert_eq!(detect(b"[garbage", true, Some(dispatch)), Format::Lines);
        assert_eq!(detect(b"[12:00] started", true, Some(dispatch)), Format::Lines);
        assert_eq!(detect(b"[1,2]", true, Some(dispatch)), Format::Lines);
        assert_eq!(detect(dispatch, true, None), Format::Lines);
    }

    #[test]
    fn a_bom_is_not_part_of_the_first_line() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBF{}"), b"{}");
        assert_eq!(strip_bom(b"{}"), b"{}");
    }
}
